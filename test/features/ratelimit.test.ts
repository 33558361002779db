import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { takeTokens } from "../../src/http/rate-limit.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({
    RATE_LIMIT_USER_PER_MIN: "60",
    RATE_LIMIT_USER_BURST: "5",
    RATE_LIMIT_CHANNEL_PER_MIN: "60",
    RATE_LIMIT_CHANNEL_BURST: "8",
    RATE_LIMIT_READ_PER_MIN: "60",
    RATE_LIMIT_READ_BURST: "10",
    WS_MAX_FRAMES_PER_SEC: "5",
  });
}, 60000);
afterAll(() => server?.stop(), 60000);

const send = (channelId: string, as: string, text = "hi") =>
  server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json: { text } });
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
    expect(await refused.json()).toEqual({ error: "RATE_LIMITED", message: expect.any(String) });
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

  test("buckets live in the database: a second instance on the same database sees the same bucket", async () => {
    const sql = server.app.deps.sql;
    const key = `user-write:user:shared-${uniqueSlug()}`;
    const rule = { perMinute: 1, burst: 2 };
    // Two callers (as two instances would) racing on one key: exactly 2 tokens are handed out.
    const results = await Promise.all(Array.from({ length: 6 }, () => takeTokens(sql, [{ key, rule }])));
    expect(results.filter(([s]) => s!.allowed)).toHaveLength(2);
    const [row] = await sql`select tokens from rate_limit_buckets where key = ${key}`;
    expect(Number(row!.tokens)).toBeLessThan(1);
  });

  test("refill: a bucket refills at its rate", async () => {
    const sql = server.app.deps.sql;
    const key = `refill-${uniqueSlug()}`;
    const rule = { perMinute: 6000, burst: 1 }; // 100 tokens a second
    expect((await takeTokens(sql, [{ key, rule }]))[0]!.allowed).toBe(true);
    await sql`update rate_limit_buckets set updated_at = updated_at - interval '1 second' where key = ${key}`;
    expect((await takeTokens(sql, [{ key, rule }]))[0]!.allowed).toBe(true);
    expect((await takeTokens(sql, [{ key, rule }]))[0]!.allowed).toBe(false);
  });

  test("one small query: the limiter adds little to a request", async () => {
    const sql = server.app.deps.sql;
    const rule = { perMinute: 1_000_000, burst: 1_000_000 };
    const started = performance.now();
    for (let i = 0; i < 50; i++) await takeTokens(sql, [{ key: "timing-user", rule }, { key: "timing-channel", rule }]);
    const perCall = (performance.now() - started) / 50;
    console.log(`rate limiter: ${perCall.toFixed(2)} ms per request (two buckets, one statement)`);
    expect(perCall).toBeLessThan(20);
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
