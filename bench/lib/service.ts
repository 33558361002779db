import { rmSync } from "node:fs";
import { freshPostgresDatabase } from "../../test/helpers/services.ts";
import { freePort, spawnServer, type Child } from "./proc.ts";

export const BENCH_USER = "user:bench";
export const databaseUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";

/** A fresh database on the PostgreSQL server, dropped by the returned function. */
export const freshDatabase = (prefix = "daarion_bench") => freshPostgresDatabase(prefix, databaseUrl);

export interface Service extends Child {
  /** The fresh PostgreSQL database's URL; empty for the embedded default. */
  dbUrl: string;
  createChannel(): Promise<string>;
  send(channelId: string, text: string): Promise<Response>;
}

/**
 * What the bench turns off in the service: it measures throughput, not policy. A rate of 0
 * turns a token bucket off (no upsert per request); the address bucket limits requests with no
 * caller (the bench's /internal/cluster polls: 60 in a burst from 127.0.0.1, shared
 * by a cluster's instances through PostgreSQL); the frame cap only limits what clients
 * send, which subscribers never do, but a flood close must not end a bench socket. There is
 * no per-user or per-channel cap on WebSocket connections to lift.
 */
export const POLICY_LIMITS_OFF: Record<string, string> = {
  RATE_LIMIT_USER_PER_MIN: "0",
  RATE_LIMIT_CHANNEL_PER_MIN: "0",
  RATE_LIMIT_READ_PER_MIN: "0",
  RATE_LIMIT_ADDRESS_PER_MIN: "0",
  WS_MAX_FRAMES_PER_SEC: "0",
};

/**
 * The default configuration's limiter with budgets the bench never reaches: every bucket on
 * (a caller's writes and reads, the channel's writes, the address's), so each request does the
 * limiter's full work and is admitted. The send scenario's limits case compares it with
 * POLICY_LIMITS_OFF to measure what the default limiter costs.
 */
export const POLICY_LIMITS_UNREACHED: Record<string, string> = {
  RATE_LIMIT_USER_PER_MIN: "60000000",
  RATE_LIMIT_USER_BURST: "1000000",
  RATE_LIMIT_CHANNEL_PER_MIN: "60000000",
  RATE_LIMIT_CHANNEL_BURST: "1000000",
  RATE_LIMIT_READ_PER_MIN: "60000000",
  RATE_LIMIT_READ_BURST: "1000000",
  RATE_LIMIT_ADDRESS_PER_MIN: "60000000",
  RATE_LIMIT_ADDRESS_BURST: "1000000",
};

/**
 * The service as users run it (`bun src/main.ts`), in its own process, on a fresh PostgreSQL
 * database with the local Matrix backend unless `env` names a homeserver, policy limits off.
 * `embedded`: on the embedded defaults instead (no DATABASE_URL, NATS_URL or
 * MATRIX_HOMESERVER_URL: PGlite in a fresh DATA_DIR, removed at stop), answered once /ready is.
 * `cwd`: another checkout's `src/main.ts` (an A/B against an older commit).
 */
export async function startService(env: Record<string, string> = {}, opts: { embedded?: boolean; cwd?: string } = {}): Promise<Service> {
  const db = opts.embedded ? null : await freshDatabase();
  const port = await freePort();
  const dataDir = `/tmp/bench-data-${port}`;
  rmSync(dataDir, { recursive: true, force: true });
  const { BENCH_CPU_PROF_DIR: profDir, ...serviceEnv } = env;
  const profile = profDir ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${profDir}`] : [];
  const child = await spawnServer(["bun", ...profile, "src/main.ts"], {
    name: "service",
    port,
    cwd: opts.cwd,
    // /ready answers 503 until start-up has caught up; /health as soon as the server listens.
    readyPath: opts.embedded ? "/ready" : "/health",
    env: {
      PORT: String(port),
      HOST: "127.0.0.1",
      // Empty counts as unset (the embedded database).
      DATABASE_URL: db?.url ?? "",
      DATA_DIR: dataDir,
      LOG_LEVEL: "silent",
      MATRIX_HOMESERVER_URL: "",
      NATS_URL: opts.embedded ? "" : (process.env.BENCH_NATS_URL ?? ""),
      ...POLICY_LIMITS_OFF,
      ...serviceEnv,
    },
  });
  const headers = { "content-type": "application/json", "x-user-id": BENCH_USER };
  return {
    ...child,
    dbUrl: db?.url ?? "",
    async stop() {
      await child.stop();
      await db?.drop();
      if (opts.embedded) rmSync(dataDir, { recursive: true, force: true });
    },
    async createChannel() {
      const res = await fetch(`${child.url}/api/messaging/channels`, {
        method: "POST",
        headers,
        body: JSON.stringify({ slug: `b-${crypto.randomUUID().slice(0, 12)}`, name: "Bench", microdao_id: "microdao:bench", visibility: "public" }),
      });
      if (res.status !== 201) throw new Error(`create channel: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { id: string }).id;
    },
    send(channelId, text) {
      return fetch(`${child.url}/api/messaging/channels/${channelId}/messages`, { method: "POST", headers, body: JSON.stringify({ text }) });
    },
  };
}
