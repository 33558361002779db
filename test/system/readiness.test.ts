import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { MatrixGate } from "../helpers/gated-matrix.ts";
import { serviceMissing } from "../helpers/services.ts";
import type { NatsEventBus } from "../../src/events/nats.ts";
import { synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";

/** A port nothing listens on: bound, read, and closed again. */
async function closedPort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

type Check = { ok: boolean; ms?: number; error?: string };
type ReadyBody = { status: string; checks: Record<"database" | "matrix" | "events" | "startup", Check> };

const servers: TestServer[] = [];
afterAll(() => Promise.all(servers.map((s) => s.stop())), 60000);
async function serve(env: Record<string, string>, opts: Parameters<typeof startTestServer>[1] = {}) {
  const server = await startTestServer(env, opts);
  servers.push(server);
  return server;
}

/** Asks /ready, as an orchestrator's probe does, until it answers `status` or 30 s passed. */
async function readyAnswer(server: TestServer, status: number): Promise<{ res: Response; body: ReadyBody }> {
  const deadline = Date.now() + 30000;
  for (;;) {
    const res = await server.api("/ready");
    const body = (await res.json()) as ReadyBody;
    if (res.status === status || Date.now() > deadline) return { res, body };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const skipReal = serviceMissing("DATABASE_URL") || serviceMissing("NATS_URL") || synapseMissing();

describe.skipIf(skipReal)("/ready on real PostgreSQL, NATS and Synapse", () => {
  test("200 with every check ok, without credentials and outside the rate limits", async () => {
    const server = await serve(synapseServiceEnv({ RATE_LIMIT_ADDRESS_PER_MIN: "1", RATE_LIMIT_ADDRESS_BURST: "1" }));
    const { res, body } = await readyAnswer(server, 200);
    expect(res.status).toBe(200);
    expect(body).toEqual({
      status: "ready",
      checks: {
        database: { ok: true, ms: expect.any(Number) },
        matrix: { ok: true, ms: expect.any(Number) },
        events: { ok: true, ms: expect.any(Number) },
        startup: { ok: true },
      },
    });
    for (let i = 0; i < 3; i++) expect((await server.api("/ready")).status).toBe(200);
    expect((await server.api("/health")).status).toBe(200);
  }, 60000);

  test("503 naming matrix while the homeserver URL points at a closed port", async () => {
    const server = await serve(synapseServiceEnv({ MATRIX_HOMESERVER_URL: `http://127.0.0.1:${await closedPort()}` }));
    await (server.app.deps.events as NatsEventBus).ready();
    const res = await server.api("/ready");
    expect(res.status).toBe(503);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    const body = (await res.json()) as ReadyBody;
    expect(body.status).toBe("not_ready");
    expect(body.checks.matrix).toEqual({ ok: false, ms: expect.any(Number), error: "unreachable" });
    expect(body.checks.database.ok).toBe(true);
    expect(body.checks.events.ok).toBe(true);
    // Liveness does not depend on it.
    expect((await server.api("/health")).status).toBe(200);
  }, 60000);

  test("503 naming matrix with a timeout when the homeserver accepts connections but never answers", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const server = await serve(synapseServiceEnv({ MATRIX_HOMESERVER_URL: `http://127.0.0.1:${silent.port}` }));
      const started = performance.now();
      const res = await server.api("/ready");
      expect(res.status).toBe(503);
      expect(((await res.json()) as ReadyBody).checks.matrix).toEqual({ ok: false, ms: expect.any(Number), error: "timeout" });
      // Each check is bounded (1 s), so the probe answers well within an orchestrator's timeout.
      expect(performance.now() - started).toBeLessThan(3000);
    } finally {
      // Closing its connections fails the poller's pending call at once, so the server stops promptly.
      silent.stop(true);
    }
  }, 60000);
});

describe("/ready and NATS", () => {
  test("503 naming events while NATS is unreachable; the service still serves", async () => {
    const server = await serve({ NATS_URL: `nats://127.0.0.1:${await closedPort()}` });
    const res = await server.api("/ready");
    const body = (await res.json()) as ReadyBody;
    expect(res.status).toBe(503);
    expect(body.status).toBe("not_ready");
    expect(body.checks.events).toEqual({ ok: false, ms: expect.any(Number), error: "unreachable" });
    expect(body.checks.database.ok).toBe(true);
    expect(body.checks.matrix.ok).toBe(true);
    expect(JSON.stringify(body)).not.toContain("nats://");
    expect((await server.api("/api/messaging/channels", { as: "user:ready-reader" })).status).toBe(200);
  }, 60000);
});

describe("/ready and start-up", () => {
  test("503 until the first sync round completed, then 200", async () => {
    const gate = new MatrixGate();
    gate.holdSync();
    const server = await serve({}, { wrapMatrix: gate.wrap });
    const held = await server.api("/ready");
    expect(held.status).toBe(503);
    const body = (await held.json()) as ReadyBody;
    expect(body.checks.startup).toEqual({ ok: false, error: "the first sync round has not completed" });
    expect(body.checks.database.ok).toBe(true);
    gate.releaseSync();
    const { res } = await readyAnswer(server, 200);
    expect(res.status).toBe(200);
  }, 60000);

  test("a restart on its data is ready once it caught up, without waiting out a long-poll of a quiet homeserver", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "daarion-ready-restart-"));
    try {
      const first = await startTestServer({ DATA_DIR: dataDir });
      expect((await readyAnswer(first, 200)).res.status).toBe(200);
      await first.stop();
      // A long-poll of 120 s would keep the second start unready past readyAnswer's 30 s.
      const again = await serve({ DATA_DIR: dataDir, SYNC_TIMEOUT_MS: "120000" });
      const { res, body } = await readyAnswer(again, 200);
      expect(res.status).toBe(200);
      expect(body.checks.startup).toEqual({ ok: true });
      await again.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90000);

  test("in push mode, ready once the inbox a previous run left is drained", async () => {
    const server = await serve({ MATRIX_EVENTS_MODE: "push", MATRIX_HS_TOKEN: "hs-token-for-readiness-test" });
    const { res, body } = await readyAnswer(server, 200);
    expect(res.status).toBe(200);
    expect(body.checks.startup).toEqual({ ok: true });
  }, 60000);

  test("/ready is in the OpenAPI document, without security", async () => {
    const server = servers[servers.length - 1] ?? (await serve({}));
    const doc = (await (await server.api("/docs/json")).json()) as { paths: Record<string, { get?: { security?: unknown[]; responses: unknown } }> };
    const responses = doc.paths["/ready"]!.get!.responses as Record<string, { headers?: Record<string, unknown> }>;
    expect(Object.keys(responses).sort()).toEqual(["200", "503"]);
    expect(Object.keys(responses["503"]!.headers ?? {})).toEqual(["Retry-After"]);
    expect(doc.paths["/ready"]!.get!.security ?? []).toEqual([]);
  });
});
