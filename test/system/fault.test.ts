import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import postgres from "postgres";
import type { Subprocess } from "bun";
import { databaseUrl, freshPostgresDatabase, requireServices, serviceMissing } from "../helpers/services.ts";
import { freePort, LineWatcher } from "../helpers/process.ts";
import { synapseMissing } from "../helpers/synapse.ts";
import { matrixBodies, REPO, startServiceProcess, tally } from "./fault-harness.ts";

setDefaultTimeout(600_000);

/**
 * Faults under load, against real PostgreSQL, NATS (a nats-server of this suite's own, so it
 * can be stopped) and Synapse. Several clients send N messages each, retrying with the same
 * Idempotency-Key until they get 201 or 202; a WebSocket client follows the channel and
 * resumes from its last seq after every disconnect. After each fault heals, every accepted
 * message must be in Matrix, in the index, on the WebSocket and in JetStream exactly once.
 */
const NATS_SERVER = "/usr/sbin/nats-server";
const CLIENTS = 3;
const PER_CLIENT = 12;

function faultSuiteUnavailable(): boolean {
  if (synapseMissing() || serviceMissing("DATABASE_URL")) return true;
  return false;
}

describe.skipIf(faultSuiteUnavailable())("fault suite", () => {
  let dbUrl: string;
  let dropDb: () => Promise<void>;
  let natsPort: number;
  let natsDir: string;
  let nats: Subprocess | null = null;
  let service: Subprocess | null = null;
  let servicePort: number;
  let db: postgres.Sql;
  const figures: string[] = [];

  async function startNats() {
    const proc = Bun.spawn([NATS_SERVER, "-a", "127.0.0.1", "-p", String(natsPort), "-js", "-sd", natsDir], { stdout: "ignore", stderr: "pipe" });
    await new LineWatcher(proc.stderr).waitFor((l) => l.includes("Server is ready"), 1, 20000);
    nats = proc;
  }

  async function startService() {
    service = await startServiceProcess({ PORT: String(servicePort), DATABASE_URL: dbUrl, NATS_URL: `nats://127.0.0.1:${natsPort}` });
  }

  beforeAll(async () => {
    const fresh = await freshPostgresDatabase("daarion_fault");
    dbUrl = fresh.url;
    dropDb = fresh.drop;
    natsPort = await freePort();
    natsDir = mkdtempSync(join(tmpdir(), "daarion-fault-nats-"));
    servicePort = await freePort();
    await startNats();
    await startService();
    db = postgres(dbUrl, { max: 2, onnotice: () => {} });
  }, 120000);

  afterAll(async () => {
    service?.kill("SIGKILL");
    nats?.kill("SIGKILL");
    await db?.end({ timeout: 1 }).catch(() => {});
    await dropDb?.().catch(() => {});
    rmSync(natsDir, { recursive: true, force: true });
    console.log(["", "fault suite figures:", ...figures].join("\n"));
  }, 60000);

  const base = () => `http://127.0.0.1:${servicePort}`;

  /** POSTs until the service answers 201/202 (or refuses the request itself), whatever fails in between. */
  async function sendReliably(channelId: string, text: string, key: string): Promise<string | null> {
    const deadline = Date.now() + 240_000;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      try {
        const res = await fetch(`${base()}/api/messaging/channels/${channelId}/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-user-id": "user:loader", "idempotency-key": key },
          body: JSON.stringify({ text }),
        });
        if (res.status === 201 || res.status === 202) return ((await res.json()) as { id: string }).id;
        if (res.status < 500 && res.status !== 409) throw new Error(`${text}: refused with ${res.status} ${await res.text()}`);
      } catch (err) {
        if (err instanceof Error && err.message.includes("refused with")) throw err;
      }
      await Bun.sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5))); // client backoff, not synchronisation
    }
    return null;
  }

  /** Follows a channel over the WebSocket, resuming from its last seq after every disconnect. */
  function follow(channelId: string) {
    const created = new Map<string, number>();
    const sent = new Set<string>();
    let lastSeq = 0;
    let stopped = false;
    let wake: (() => void) | null = null;
    let socket: WebSocket | null = null;
    const open = () => {
      if (stopped) return;
      const ws = new WebSocket(`ws://127.0.0.1:${servicePort}/ws/messaging/${channelId}?user_id=user:watcher&since_seq=${lastSeq}`);
      socket = ws;
      ws.onmessage = (e) => {
        if (e.data === "pong") return;
        const f = JSON.parse(String(e.data));
        if (typeof f.seq === "number" && (f.type === "message.created" || f.type === "message.updated")) lastSeq = Math.max(lastSeq, f.seq);
        if (f.type === "message.created") created.set(f.message.id, (created.get(f.message.id) ?? 0) + 1);
        if ((f.type === "message.created" || f.type === "message.updated") && f.message.status === "sent") sent.add(f.message.id);
        wake?.();
      };
      ws.onclose = () => {
        if (!stopped) setTimeout(open, 300); // reconnect backoff
      };
    };
    open();
    return {
      created,
      sent,
      /** Until every id has come as a message.created frame (live or replayed on resume). */
      async untilSeen(ids: string[], timeoutMs: number) {
        const deadline = Date.now() + timeoutMs;
        while (!ids.every((id) => created.has(id))) {
          const left = deadline - Date.now();
          if (left <= 0) return; // the tally below reports what is missing
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, Math.min(left, 1000));
            wake = () => {
              clearTimeout(t);
              resolve();
            };
          });
        }
      },
      stop() {
        stopped = true;
        socket?.close();
      },
    };
  }

  async function jetstreamMessageIds(channelId: string): Promise<string[]> {
    const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}` });
    try {
      const consumer = await nc.jetstream().consumers.get("MESSAGING");
      const ids: string[] = [];
      for (;;) {
        const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
        let n = 0;
        for await (const m of batch) {
          n++;
          if (m.subject !== "messaging.message.created") continue;
          const d = m.json<{ channel_id: string; message_id: string }>();
          if (d.channel_id === channelId) ids.push(d.message_id);
        }
        if (n === 0) break;
      }
      return ids;
    } finally {
      await nc.close();
    }
  }

  async function scenario(name: string, fault: () => Promise<void>) {
    const created = await fetch(`${base()}/api/messaging/channels`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-user-id": "user:loader" },
      body: JSON.stringify({ slug: `fault-${name}-${Date.now().toString(36)}`, name: `Fault ${name}`, microdao_id: "microdao:daarion", visibility: "public" }),
    });
    expect(created.status).toBe(201);
    const channel = (await created.json()) as { id: string; matrix_room_id: string };
    const watcher = follow(channel.id);
    const texts: string[] = [];
    let sentSoFar = 0;
    let faultStarted: (() => void) | null = null;
    const faultGate = new Promise<void>((resolve) => (faultStarted = resolve));
    const clients = Array.from({ length: CLIENTS }, async (_, c) => {
      const ids: Array<{ id: string; text: string }> = [];
      for (let i = 0; i < PER_CLIENT; i++) {
        const text = `${name} c${c} m${i}`;
        const id = await sendReliably(channel.id, text, `${name}-${c}-${i}`);
        if (id) ids.push({ id, text });
        if (++sentSoFar === Math.floor((CLIENTS * PER_CLIENT) / 3)) faultStarted!();
      }
      return ids;
    });
    await faultGate;
    await fault();
    const accepted = (await Promise.all(clients)).flat();
    texts.push(...accepted.map((a) => a.text));
    const ids = accepted.map((a) => a.id);
    // Every accepted message ends up sent (the index says so), and the watcher has seen them all.
    const settleBy = Date.now() + 180_000;
    for (;;) {
      const [row] = await db`select count(*)::int as n from messages where channel_id = ${channel.id} and delivery_state = 'pending'`;
      if (row!.n === 0 || Date.now() > settleBy) break;
      await Bun.sleep(500); // polling the outcome of a fault, bounded
    }
    await watcher.untilSeen(ids, 60_000);
    watcher.stop();

    const indexRows = await db<{ id: string; content_preview: string; delivery_state: string }[]>`
      select id, content_preview, delivery_state from messages where channel_id = ${channel.id}`;
    const index = tally(texts, indexRows.map((r) => r.content_preview));
    const matrix = tally(texts, await matrixBodies(channel.matrix_room_id));
    const ws = tally(ids, [...watcher.created.entries()].flatMap(([id, n]) => Array(n).fill(id)));
    let jsIds: string[] = [];
    const jsDeadline = Date.now() + 60_000;
    do {
      jsIds = await jetstreamMessageIds(channel.id);
    } while (!ids.every((id) => jsIds.includes(id)) && Date.now() < jsDeadline);
    const jetstream = tally(ids, jsIds);
    const line =
      `${name.padEnd(16)} accepted ${accepted.length}/${CLIENTS * PER_CLIENT}` +
      ` | matrix ${matrix.count} (missing ${matrix.missing}, dup ${matrix.duplicated})` +
      ` | indexed ${index.count} (missing ${index.missing}, dup ${index.duplicated})` +
      ` | websocket ${ws.count} (missing ${ws.missing}, dup ${ws.duplicated})` +
      ` | jetstream ${jetstream.count} (missing ${jetstream.missing}, dup ${jetstream.duplicated})`;
    figures.push(line);
    console.log(line);
    expect(accepted.length).toBe(CLIENTS * PER_CLIENT);
    expect([matrix.missing, matrix.duplicated, index.missing, index.duplicated, ws.missing, ws.duplicated, jetstream.missing, jetstream.duplicated]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(indexRows.every((r) => r.delivery_state === "sent")).toBe(true);
  }

  test("kill -9 of the service mid-load, then a restart", async () => {
    await scenario("kill-9", async () => {
      service!.kill("SIGKILL");
      await service!.exited;
      await startService();
    });
  });

  test("Synapse stopped for 30 seconds mid-load, then started again", async () => {
    await scenario("synapse-30s", async () => {
      const stop = Bun.spawnSync(["bun", "run", "synapse", "stop"], { cwd: REPO, env: process.env });
      expect(stop.exitCode).toBe(0);
      await Bun.sleep(30_000); // the fault's duration, not a synchronisation
      const start = Bun.spawnSync(["bun", "run", "synapse", "start"], { cwd: REPO, env: process.env });
      expect(start.exitCode).toBe(0);
    });
  });

  test("PostgreSQL restarted mid-load", async () => {
    const version = readdirSync("/etc/postgresql")[0];
    await scenario("postgres-restart", async () => {
      const restart = Bun.spawnSync(["pg_ctlcluster", "--skip-systemctl-redirect", version!, "main", "restart"]);
      expect(restart.exitCode).toBe(0);
    });
  });

  test("NATS stopped mid-load, then started again", async () => {
    await scenario("nats-stop", async () => {
      nats!.kill("SIGKILL");
      await nats!.exited;
      await Bun.sleep(5_000); // the outage's duration
      await startNats();
    });
  });
});

void requireServices;
void databaseUrl;
