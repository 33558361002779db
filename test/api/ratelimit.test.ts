import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { hsToken, JWT_TEST, jwtTestEnv } from "../helpers/jwt.ts";
import { pruneBuckets, startBucketPruning } from "../../src/http/rate-pruning.ts";
import { spendAndReadBuckets } from "../../src/store/rate-limits.ts";
import { createLogger } from "../../src/log.ts";

const LIMITS = {
  RATE_LIMIT_USER_PER_MIN: "60",
  RATE_LIMIT_USER_BURST: "5",
  RATE_LIMIT_CHANNEL_PER_MIN: "60",
  RATE_LIMIT_CHANNEL_BURST: "8",
  RATE_LIMIT_READ_PER_MIN: "60",
  RATE_LIMIT_READ_BURST: "10",
  RATE_LIMIT_ADDRESS_PER_MIN: "60",
  RATE_LIMIT_ADDRESS_BURST: "4",
  // Rounds run when a test asks for one (app.rateLimits.reconcile()), so each test decides when
  // this instance talks to PostgreSQL; rate-limit-instances.test.ts runs the timer.
  RATE_LIMIT_RECONCILE_MS: "60000",
};
const silentLog = createLogger("silent");

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ ...LIMITS, WS_MAX_FRAMES_PER_SEC: "5" });
}, 60000);
afterAll(() => server?.stop(), 60000);

const send = (channelId: string, as: string, text = "hi") =>
  server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json: { text } });
const bucketRows = async (target: TestServer, key: string) =>
  (await target.app.deps.sql`select tokens from rate_limit_buckets where key = ${key}`).map((r) => ({ tokens: Number(r.tokens) }));
const messageCount = async (channelId: string) =>
  Number((await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channelId}`)[0]!.n);

describe("rate limits", () => {
  test("a caller's writes: headers on success, then 429 RATE_LIMITED with Retry-After, and nothing written", async () => {
    const channel = await createChannel(server, "user:rl-owner"); // 1 token of user:rl-owner
    const remaining: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await send(channel.id, "user:rl-owner");
      expect(res.status).toBe(201);
      expect(res.headers.get("x-ratelimit-limit")).toBe("5");
      remaining.push(res.headers.get("x-ratelimit-remaining")!);
      expect(Number(res.headers.get("x-ratelimit-reset"))).toBeGreaterThan(0);
    }
    expect(remaining).toEqual(["3", "2", "1", "0"]);
    const before = await messageCount(channel.id);
    const refused = await send(channel.id, "user:rl-owner");
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ error: "RATE_LIMITED", message: expect.any(String), request_id: expect.any(String) });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get("x-ratelimit-remaining")).toBe("0");
    expect(await messageCount(channel.id)).toBe(before);
    // Another caller still has a full bucket.
    const other = await send(channel.id, "user:rl-other");
    expect(other.status).toBe(201);
  });

  test("a channel's writes are limited across callers", async () => {
    const channel = await createChannel(server, "user:rl-chan-owner");
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await send(channel.id, `user:rl-crowd-${i}`)).status);
    // 8 tokens: the 9th and 10th distinct callers are refused by the channel bucket.
    expect(statuses.slice(0, 8).every((s) => s === 201)).toBe(true);
    expect(statuses.slice(8)).toEqual([429, 429]);
  });

  test("reads have their own, looser bucket; health and docs are never limited", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await server.api("/api/messaging/channels", { as: "user:rl-reader" })).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.slice(10)).toEqual([429, 429]);
    // The reader's write bucket is untouched.
    expect((await createChannel(server, "user:rl-reader")).id).toBeString();
    for (let i = 0; i < 12; i++) expect((await server.api("/health")).status).toBeLessThan(400);
  });

  test("nothing is written per request: the buckets are in memory until a round sends what was taken", async () => {
    const key = `user-read:user:rl-quiet-${uniqueSlug()}`;
    const caller = key.slice("user-read:".length);
    for (let i = 0; i < 3; i++) expect((await server.api("/api/messaging/channels", { as: caller })).status).toBe(200);
    expect(await bucketRows(server, key)).toEqual([]);
    expect(await server.app.rateLimits.reconcile()).toBe(true);
    // One round, one row: the burst of 10 less the 3 reads (and less than a second of refill).
    const [row] = await bucketRows(server, key);
    expect(row!.tokens).toBeGreaterThanOrEqual(7);
    expect(row!.tokens).toBeLessThan(8);
  });

  test("a WebSocket client flooding frames is closed with 4429", async () => {
    const channel = await createChannel(server, "user:rl-ws");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:rl-ws`);
    for (let i = 0; i < 20; i++) inbox.ws.send("ping");
    const closed = await Promise.race([inbox.closed, Bun.sleep(5000).then(() => null)]);
    expect(closed).toEqual({ code: 4429, reason: "too many frames" });
  });

  test("a WebSocket client within the limit keeps its socket", async () => {
    const channel = await createChannel(server, "user:rl-ws2");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:rl-ws2`);
    for (let i = 0; i < 3; i++) {
      inbox.ws.send("ping");
      expect(await inbox.next()).toBe("pong");
    }
    expect(inbox.ws.readyState).toBe(WebSocket.OPEN);
    inbox.ws.close();
  });
});

/** A request with exactly the headers given (no helper identity). */
const raw = (target: TestServer, path: string, init: { method?: string; headers?: Record<string, string>; json?: unknown } = {}) =>
  fetch(target.url + path, {
    method: init.method ?? "GET",
    headers: { ...(init.json === undefined ? {} : { "content-type": "application/json" }), ...init.headers },
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  });
/** The rows PostgreSQL holds once this instance's round has sent what it took. */
const bucketKeys = async (target: TestServer, like: string) => {
  await target.app.rateLimits.reconcile();
  return (await target.app.deps.sql`select key from rate_limit_buckets where key like ${like} order by key`).map((r) => r.key as string);
};

describe("rate limits (dev mode): all-or-nothing buckets, the client address, bounded rows", () => {
  test("a user refused by their own bucket takes nothing from the channel's: another user still sends", async () => {
    const channel = await createChannel(server, "user:rl-flood-owner");
    const flood: number[] = [];
    for (let i = 0; i < 15; i++) flood.push((await send(channel.id, "user:rl-flooder")).status);
    expect(flood.filter((s) => s === 201)).toHaveLength(5);
    expect(flood.slice(5).every((s) => s === 429)).toBe(true);
    // The channel's 8 tokens: 5 went to the flooder's admitted sends, 3 are left for everyone else.
    for (let i = 0; i < 3; i++) expect((await send(channel.id, `user:rl-bystander-${i}`)).status).toBe(201);
    expect((await send(channel.id, "user:rl-bystander-late")).status).toBe(429);
  });

  test("without a valid X-User-Id the client address is limited (X-Forwarded-For ignored from an untrusted peer), and no user or channel budget is spent", async () => {
    const channel = await createChannel(server, "user:rl-addr-owner");
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await raw(server, `/api/messaging/channels/${channel.id}/messages`, {
        method: "POST",
        headers: { "x-forwarded-for": `203.0.113.${20 + i}`, ...(i % 2 ? { "x-user-id": "not-an-id" } : {}) },
        json: { text: "hi" },
      });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(await res.json()).toEqual({ error: "RATE_LIMITED", message: expect.any(String), request_id: expect.any(String) });
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        expect(res.headers.get("x-ratelimit-limit")).toBe("4");
      }
    }
    // One bucket for the socket's peer (4 tokens), whatever X-Forwarded-For claims.
    expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
    expect(await bucketKeys(server, "address:%")).toEqual(["address:127.0.0.1"]);
    expect(await bucketKeys(server, `channel-write:${channel.id}`)).toEqual([]);
    // The owner's budget is untouched: 4 tokens left after creating the channel.
    for (let i = 0; i < 4; i++) expect((await send(channel.id, "user:rl-addr-owner")).status).toBe(201);
  });

  test("made-up identities do not grow the bucket table: a bucket that has refilled is pruned, one still spending is kept", async () => {
    const sql = server.app.deps.sql;
    for (let i = 0; i < 30; i++) expect((await server.api("/api/messaging/channels", { as: `user:rl-ghost-${i}` })).status).toBe(200);
    for (let i = 0; i < 10; i++) await server.api("/api/messaging/channels", { as: "user:rl-busy" });
    expect(await bucketKeys(server, "user-read:user:rl-ghost-%")).toHaveLength(30);
    // A minute later every ghost's bucket (1 token a second, burst 10) is full again, as if never used.
    await sql`update rate_limit_buckets set updated_at = updated_at - interval '1 minute' where key like 'user-read:user:rl-ghost-%'`;
    await pruneBuckets(sql);
    expect(await bucketKeys(server, "user-read:user:rl-ghost-%")).toEqual([]);
    expect(await bucketKeys(server, "user-read:user:rl-busy")).toEqual(["user-read:user:rl-busy"]);
    // The busy caller's bucket kept its state: still empty, in memory and in PostgreSQL.
    expect((await server.api("/api/messaging/channels", { as: "user:rl-busy" })).status).toBe(429);
  });

  test("the app prunes on a timer it owns, not by chance", async () => {
    const sql = server.app.deps.sql;
    const key = `user-write:user:rl-timer-${uniqueSlug()}`;
    await spendAndReadBuckets(sql, { keys: [key], taken: [1], rates: [1], bursts: [5] }, 0);
    await sql`update rate_limit_buckets set updated_at = updated_at - interval '1 minute' where key = ${key}`;
    const pruning = startBucketPruning(sql, silentLog, 20);
    try {
      const deadline = Date.now() + 5000;
      while ((await bucketKeys(server, key)).length > 0 && Date.now() < deadline) await Bun.sleep(10);
      expect(await bucketKeys(server, key)).toEqual([]);
    } finally {
      await pruning.stop();
    }
  });
});

describe("rate limits: idempotency, configuration", () => {
  test("a refused request can be retried with the same Idempotency-Key once a token is back", async () => {
    const channel = await createChannel(server, "user:rl-idem");
    for (let i = 0; i < 4; i++) expect((await send(channel.id, "user:rl-idem")).status).toBe(201);
    const retry = () =>
      server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:rl-idem", headers: { "idempotency-key": "rl-idem-1" }, json: { text: "once" } });
    expect((await retry()).status).toBe(429);
    // A minute passes in PostgreSQL's clock: the next round brings the refilled bucket back.
    await server.app.rateLimits.reconcile();
    await server.app.deps.sql`update rate_limit_buckets set updated_at = updated_at - interval '1 minute' where key = 'user-write:user:rl-idem'`;
    await server.app.rateLimits.reconcile();
    const admitted = await retry();
    expect(admitted.status).toBe(201);
    expect(admitted.headers.get("idempotent-replayed")).toBeNull();
  });

  test("a bad TRUSTED_PROXIES stops start-up with one line naming the variable", async () => {
    const refusal = async (value: string) => {
      // Its own in-memory database: the refusal comes before any database is opened.
      const started = await startTestServer({ TRUSTED_PROXIES: value, DATA_DIR: ":memory:" }).catch((err: Error) => err);
      if (!(started instanceof Error)) await started.stop();
      return started instanceof Error ? started.message : "started";
    };
    expect(await refusal("proxy.local")).toStartWith("invalid environment variable TRUSTED_PROXIES=");
    expect(await refusal("10.0.0.0/33")).toMatch(/^invalid environment variable TRUSTED_PROXIES=.*"10\.0\.0\.0\/33" is not an IP address or CIDR range$/);
  });

  test("the client address: X-Forwarded-For read from the right, only past trusted proxies", async () => {
    const { clientAddress, parseTrustedProxies } = await import("../../src/http/client-address.ts");
    const trusted = parseTrustedProxies("10.0.0.0/8, 2001:db8::/32");
    expect(clientAddress("192.0.2.7", "203.0.113.1", trusted)).toBe("192.0.2.7");
    expect(clientAddress("192.0.2.7", "203.0.113.1", null)).toBe("192.0.2.7");
    expect(clientAddress("10.1.2.3", "203.0.113.1", trusted)).toBe("203.0.113.1");
    expect(clientAddress("::ffff:10.1.2.3", "198.51.100.9, 203.0.113.1, 10.9.9.9", trusted)).toBe("203.0.113.1");
    expect(clientAddress("2001:db8::5", "[2001:db8:ffff::1]:4711", trusted)).toBe("2001:db8:ffff::1");
    expect(clientAddress("10.1.2.3", "203.0.113.1:4711", trusted)).toBe("203.0.113.1");
    // Garbage from the client: the trusted proxy's own peer view stands.
    expect(clientAddress("10.1.2.3", "10.4.4.4, not-an-ip", trusted)).toBe("10.1.2.3");
  });
});

describe("rate limits (jwt mode): buckets keyed by the verified caller", () => {
  let jwt: TestServer;
  beforeAll(async () => {
    jwt = await startTestServer(
      jwtTestEnv({ ...LIMITS, TRUSTED_PROXIES: "127.0.0.1, ::1/128" }),
      { token: (sub) => hsToken(sub) },
    );
  }, 60000);
  afterAll(() => jwt?.stop(), 60000);
  const jwtSend = (channelId: string, as: string) =>
    jwt.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json: { text: "hi" } });
  const anonymousSend = (channelId: string, headers: Record<string, string>) =>
    raw(jwt, `/api/messaging/channels/${channelId}/messages`, { method: "POST", headers, json: { text: "hi" } });

  test("a token caller without X-User-Id is limited by the token's sub", async () => {
    const channel = await createChannel(jwt, "user:jwt-rl-owner");
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await jwtSend(channel.id, "user:jwt-rl-sender");
      statuses.push(res.status);
      if (i === 0) expect(res.headers.get("x-ratelimit-limit")).toBe("5");
    }
    expect(statuses).toEqual([201, 201, 201, 201, 201, 429]);
    expect(await bucketKeys(jwt, "user-write:user:jwt-rl-sender")).toEqual(["user-write:user:jwt-rl-sender"]);
  });

  test("requests without a token naming a user in X-User-Id get 401 and spend neither that user's bucket nor the channel's", async () => {
    const channel = await createChannel(jwt, "user:jwt-rl-victim");
    for (let i = 0; i < 12; i++) {
      const res = await anonymousSend(channel.id, { "x-user-id": "user:jwt-rl-victim", "x-forwarded-for": `198.51.100.${i}` });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe("UNAUTHENTICATED");
    }
    // The victim still has the 4 tokens that creating the channel left them...
    for (let i = 0; i < 4; i++) expect((await jwtSend(channel.id, "user:jwt-rl-victim")).status).toBe(201);
    expect((await jwtSend(channel.id, "user:jwt-rl-victim")).status).toBe(429);
    // ...and the channel (8 tokens) its other 4, for anyone.
    for (let i = 0; i < 4; i++) expect((await jwtSend(channel.id, `user:jwt-rl-other-${i}`)).status).toBe(201);
    expect((await jwtSend(channel.id, "user:jwt-rl-other-late")).status).toBe(429);
  });

  test("made-up identities without a token create no bucket rows", async () => {
    for (let i = 0; i < 20; i++) {
      const res = await raw(jwt, "/api/messaging/channels", { headers: { "x-user-id": `user:jwt-rl-made-up-${i}`, "x-forwarded-for": `198.51.100.${100 + i}` } });
      expect(res.status).toBe(401);
    }
    expect(await bucketKeys(jwt, "%jwt-rl-made-up%")).toEqual([]);
  });

  test("unauthenticated requests draw from their client's address bucket; X-Forwarded-For counts behind a trusted proxy", async () => {
    const channel = await createChannel(jwt, "user:jwt-rl-addr-owner");
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await anonymousSend(channel.id, { "x-forwarded-for": "203.0.113.10" })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 429]);
    // The client is the nearest address no trusted proxy vouches for: a spoofed left part changes nothing.
    expect((await anonymousSend(channel.id, { "x-forwarded-for": "192.0.2.1, 203.0.113.10, 127.0.0.1" })).status).toBe(429);
    // Another client behind the same proxy has its own bucket.
    expect((await anonymousSend(channel.id, { "x-forwarded-for": "203.0.113.11" })).status).toBe(401);
    // An authenticated caller from the limited address is limited by who they are, not where from.
    expect((await jwt.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:jwt-rl-addr-owner", headers: { "x-forwarded-for": "203.0.113.10" }, json: { text: "hi" } })).status).toBe(201);
    expect(await bucketKeys(jwt, "address:203.0.113.1_")).toEqual(["address:203.0.113.10", "address:203.0.113.11"]);
    expect(await bucketKeys(jwt, `channel-write:${channel.id}`)).toHaveLength(1);
  });

  test("a service presenting INTERNAL_SERVICE_TOKEN is not limited as an unknown address", async () => {
    const channel = await createChannel(jwt, "user:jwt-rl-svc-owner");
    const path = `/internal/messaging/channels/${channel.id}/context`;
    const headers = { "x-internal-service-token": JWT_TEST.internalToken, "x-forwarded-for": "203.0.113.50" };
    for (let i = 0; i < 6; i++) expect((await raw(jwt, path, { headers })).status).toBe(200);
    expect(await bucketKeys(jwt, "address:203.0.113.50")).toEqual([]);
  });
});
