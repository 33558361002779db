import { loadConfig } from "../../src/config.ts";
import { startApp, type RunningApp } from "../../src/app.ts";
import type { MatrixBackend } from "../../src/matrix/port.ts";
import type { Logger } from "../../src/log.ts";
import { databaseUrl, freshPostgresDatabase, natsUrl } from "./services.ts";

/** Test code reads response bodies loosely; assertions check their shape. */
export type ApiResponse = Omit<Response, "json"> & { json(): Promise<any> };

export interface TestServer {
  app: RunningApp;
  url: string;
  wsUrl: string;
  /** fetch against the server, with X-User-Id (or, with opts.token, a Bearer token) set when `as` is given. */
  api(path: string, init?: RequestInit & { as?: string; json?: unknown }): Promise<ApiResponse>;
  stop(): Promise<void>;
}

/**
 * A real server on port 0: embedded PGlite (in memory) by default, or a fresh database on
 * the PostgreSQL server that DATABASE_URL names; NATS when NATS_URL is set.
 */
export async function startTestServer(
  env: Record<string, string> = {},
  opts: {
    wrapMatrix?: (m: MatrixBackend) => MatrixBackend;
    /** JWT mode (with jwtTestEnv() from ./jwt.ts): `as` becomes `Authorization: Bearer <token(as)>`. */
    token?: (callerId: string) => Promise<string>;
    /** The service's logger, for a test that checks what is logged. */
    log?: Logger;
  } = {},
): Promise<TestServer> {
  // A suite that names its own database (to restart on it) keeps it; otherwise each server
  // gets a fresh one.
  const ownDatabase = env.DATABASE_URL !== undefined || env.DATA_DIR !== undefined;
  const db = databaseUrl && !ownDatabase ? await freshPostgresDatabase() : null;
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: ":memory:",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    SYNC_TIMEOUT_MS: "5000",
    // Suites write far faster than people do; the rate-limit suite sets its own limits.
    RATE_LIMIT_USER_PER_MIN: "0",
    RATE_LIMIT_CHANNEL_PER_MIN: "0",
    RATE_LIMIT_READ_PER_MIN: "0",
    RATE_LIMIT_ADDRESS_PER_MIN: "0",
    ...(db ? { DATABASE_URL: db.url } : {}),
    ...(natsUrl ? { NATS_URL: natsUrl } : {}),
    ...env,
  });
  const app = await startApp(config, { wrapMatrix: opts.wrapMatrix, log: opts.log });
  const url = app.url;
  return {
    app,
    url,
    wsUrl: url.replace(/^http/, "ws"),
    async api(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.as && opts.token) headers.set("authorization", `Bearer ${await opts.token(init.as)}`);
      else if (init.as) headers.set("x-user-id", init.as);
      let body = init.body;
      if (init.json !== undefined) {
        headers.set("content-type", "application/json");
        body = JSON.stringify(init.json);
      }
      return fetch(url + path, { ...init, headers, body });
    },
    async stop() {
      await app.stop();
      await db?.drop();
    },
  };
}

let slugCounter = 0;
export const uniqueSlug = (base = "chan") => `${base}-${Date.now().toString(36)}-${(slugCounter++).toString(36)}`;

/** Creates a channel as `owner` and returns its JSON. */
export async function createChannel(
  server: TestServer,
  owner: string,
  body: Partial<{ slug: string; name: string; microdao_id: string; visibility: string; description: string }> = {},
) {
  const res = await server.api("/api/messaging/channels", {
    method: "POST",
    as: owner,
    json: { slug: uniqueSlug(), name: "Test channel", microdao_id: "microdao:daarion", visibility: "public", ...body },
  });
  if (res.status !== 201) throw new Error(`create channel: ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; slug: string; matrix_room_id: string; matrix_alias: string; visibility: string };
}
