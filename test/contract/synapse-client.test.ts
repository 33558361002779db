import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pino from "pino";
import { SynapseMatrixBackend } from "../../src/matrix/synapse.ts";
import { MatrixError } from "../../src/matrix/port.ts";
import { channelTables } from "../../src/features/index.ts";

/**
 * How the Synapse client copes with a homeserver under stress. A real Synapse will not rate
 * limit or fail on cue, so a scripted stand-in answers here; what it answers is what Synapse
 * answers (429 M_LIMIT_EXCEEDED with retry_after_ms, 5xx, other 4xx).
 */
describe("Synapse client: rate limits, retries and refusals", () => {
  const script: Array<{ status: number; body: unknown }> = [];
  const seen: Array<{ method: string; path: string; userId: string | null; auth: string | null; at: number }> = [];
  let stub: ReturnType<typeof Bun.serve>;

  beforeAll(() => {
    stub = Bun.serve({
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        seen.push({ method: req.method, path: url.pathname, userId: url.searchParams.get("user_id"), auth: req.headers.get("authorization"), at: Date.now() });
        const next = script.shift() ?? { status: 200, body: { event_id: "$ok" } };
        return Response.json(next.body, { status: next.status });
      },
    });
  });
  afterAll(() => stub.stop(true));

  const client = (budgetMs = 5000) =>
    new SynapseMatrixBackend({
      eventTypes: channelTables().handlers.types,
      baseUrl: `http://127.0.0.1:${stub.port}`,
      serverName: "daarion.city",
      asToken: "as-token-xyz",
      syncUserId: "@daarion-sync:daarion.city",
      retryBudgetMs: budgetMs,
      log: pino({ level: "silent" }),
    });

  test("sends are PUT with the txnId, masquerading with user_id and the as_token", async () => {
    seen.length = 0;
    const { eventId } = await client().sendEvent("!r:daarion.city", "@user-alice:daarion.city", "m.room.message", { body: "x" }, "txn-1");
    expect(eventId).toBe("$ok");
    expect(seen[0]).toMatchObject({
      method: "PUT",
      path: "/_matrix/client/v3/rooms/!r%3Adaarion.city/send/m.room.message/txn-1",
      userId: "@user-alice:daarion.city",
      auth: "Bearer as-token-xyz",
    });
  });

  test("429 M_LIMIT_EXCEEDED waits retry_after_ms, then retries the same request", async () => {
    seen.length = 0;
    script.push({ status: 429, body: { errcode: "M_LIMIT_EXCEEDED", error: "slow down", retry_after_ms: 300 } });
    const { eventId } = await client().sendEvent("!r:daarion.city", "@user-alice:daarion.city", "m.room.message", { body: "x" }, "txn-2");
    expect(eventId).toBe("$ok");
    expect(seen).toHaveLength(2);
    expect(seen[1]!.path).toBe(seen[0]!.path);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(280);
  });

  test("requests that failed together do not retry together (jittered backoff)", async () => {
    seen.length = 0;
    const n = 10;
    script.push(...Array.from({ length: n }, () => ({ status: 503, body: { errcode: "M_UNKNOWN" } })));
    const c = client();
    await Promise.all(Array.from({ length: n }, (_, i) => c.sendEvent("!r:x", "@user-a:x", "m.room.message", {}, `txn-jitter-${i}`)));
    const gaps = Array.from({ length: n }, (_, i) => {
      const tries = seen.filter((s) => s.path.endsWith(`/txn-jitter-${i}`));
      expect(tries).toHaveLength(2);
      return tries[1]!.at - tries[0]!.at;
    });
    // Never immediate (the floor is half of the first 200 ms ceiling), and spread over the other half.
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(95);
    expect(Math.max(...gaps) - Math.min(...gaps)).toBeGreaterThan(20);
  });

  test("429 waits at least retry_after_ms, whatever the jitter", async () => {
    seen.length = 0;
    const n = 5;
    script.push(...Array.from({ length: n }, () => ({ status: 429, body: { errcode: "M_LIMIT_EXCEEDED", error: "slow down", retry_after_ms: 400 } })));
    const c = client();
    await Promise.all(Array.from({ length: n }, (_, i) => c.sendEvent("!r:x", "@user-a:x", "m.room.message", {}, `txn-limit-${i}`)));
    for (let i = 0; i < n; i++) {
      const tries = seen.filter((s) => s.path.endsWith(`/txn-limit-${i}`));
      expect(tries).toHaveLength(2);
      // Timers may fire a millisecond or two early.
      expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(398);
    }
  });

  test("5xx is retried with backoff; any other 4xx is final", async () => {
    seen.length = 0;
    script.push({ status: 502, body: {} }, { status: 503, body: { errcode: "M_UNKNOWN" } });
    expect((await client().sendEvent("!r:x", "@user-a:x", "m.room.message", {}, "txn-3")).eventId).toBe("$ok");
    expect(seen).toHaveLength(3);

    seen.length = 0;
    script.push({ status: 403, body: { errcode: "M_FORBIDDEN", error: "not in room" } });
    const err = await client().sendEvent("!r:x", "@user-a:x", "m.room.message", {}, "txn-4").catch((e) => e);
    expect(err).toBeInstanceOf(MatrixError);
    expect(err.errcode).toBe("M_FORBIDDEN");
    expect(seen).toHaveLength(1);
  });

  test("when the budget runs out, the error says the homeserver failed", async () => {
    script.push(...Array.from({ length: 20 }, () => ({ status: 500, body: { errcode: "M_UNKNOWN", error: "boom" } })));
    const started = Date.now();
    const err = await client(600).sendEvent("!r:x", "@user-a:x", "m.room.message", {}, "txn-5").catch((e) => e);
    script.length = 0;
    expect(err).toBeInstanceOf(MatrixError);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test("an unreachable homeserver is M_UNREACHABLE after the budget", async () => {
    const dead = new SynapseMatrixBackend({
      eventTypes: channelTables().handlers.types,
      baseUrl: "http://127.0.0.1:1",
      serverName: "daarion.city",
      asToken: "t",
      syncUserId: "@daarion-sync:daarion.city",
      retryBudgetMs: 500,
      log: pino({ level: "silent" }),
    });
    const err = await dead.sendEvent("!r:x", "@user-a:x", "m.room.message", {}, "txn-6").catch((e) => e);
    expect(err).toMatchObject({ errcode: "M_UNREACHABLE" });
  });

  test("registering a user that exists (M_USER_IN_USE) counts as success", async () => {
    seen.length = 0;
    script.push({ status: 400, body: { errcode: "M_USER_IN_USE", error: "taken" } });
    await client().ensureUser("@user-zed:daarion.city");
    expect(seen[0]).toMatchObject({ method: "POST", path: "/_matrix/client/v3/register" });
  });
});
