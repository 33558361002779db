import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { answerWithin, openBody } from "../helpers/open-body.ts";

let server: TestServer;
let channelId: string;
let messageId: string;
beforeAll(async () => {
  // The battery sends hundreds of requests as one caller: the limiter would only answer 429.
  server = await startTestServer({ RATE_LIMIT_USER_PER_MIN: "0", RATE_LIMIT_CHANNEL_PER_MIN: "0", RATE_LIMIT_READ_PER_MIN: "0", MAX_BODY_BYTES: "65536" });
  const channel = await createChannel(server, "user:owner");
  channelId = channel.id;
  const res = await server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as: "user:owner", json: { text: "target" } });
  messageId = ((await res.json()) as { id: string }).id;
}, 60000);
afterAll(() => server?.stop(), 60000);

interface Outcome {
  what: string;
  status: number;
  body: string;
}

/** Every answer to hostile input: below 500, and a 4xx is `{error, message}` JSON (Matrix's shape under /_matrix). */
function expectRefusedCleanly(outcomes: Outcome[]) {
  const tally: Record<number, number> = {};
  for (const o of outcomes) tally[o.status] = (tally[o.status] ?? 0) + 1;
  console.log(`${outcomes.length} hostile requests, statuses: ${JSON.stringify(tally)}`);
  const bad = outcomes.filter((o) => {
    if (o.status >= 500) return true;
    if (o.status < 400) return false;
    if (/at .*\.ts:\d+|stack|Error:/.test(o.body)) return true;
    try {
      const json = JSON.parse(o.body);
      if (o.what.includes(" /_matrix/") && typeof json.errcode === "string") return false;
      return typeof json.error !== "string" || typeof json.message !== "string";
    } catch {
      return true;
    }
  });
  expect(bad.map((o) => `${o.what} -> ${o.status} ${o.body.slice(0, 200)}`)).toEqual([]);
}

/** A fresh channel with one message, for tests that must not see what the battery did (it deletes channels). */
async function freshChannel() {
  const channel = await createChannel(server, "user:owner");
  const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:owner", json: { text: "target" } });
  return { channelId: channel.id, messageId: ((await res.json()) as { id: string }).id };
}

async function attempt(what: string, url: string, init: RequestInit): Promise<Outcome> {
  const res = await fetch(server.url + url, init);
  return { what, status: res.status, body: await res.text() };
}

const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
const HOSTILE_SEGMENTS = [
  "..%2F..%2Fetc%2Fpasswd",
  "%2e%2e",
  "'%20or%201%3D1--",
  "%F0%9F%98%80",
  "%ff%fe",
  "%00",
  "a".repeat(4000),
  "-1",
  "99999999999999999999999",
  "1e309",
  "null",
  "00000000-0000-0000-0000-000000000000",
  "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ",
  "user:%F0%9F%98%80",
  "%E2%80%AE",
];
const HOSTILE_BODIES: Array<[string, string, string]> = [
  ["null", "null", "application/json"],
  ["array", "[1,2,3]", "application/json"],
  ["string", '"text"', "application/json"],
  ["huge number", '{"text":1e999,"limit":1e999,"member_id":123456789012345678901234567890}', "application/json"],
  ["broken JSON", '{"text": "unterminated', "application/json"],
  ["deeply nested", deep(5000), "application/json"],
  ["deep object", '{"text":' + '{"a":'.repeat(3000) + "1" + "}".repeat(3001), "application/json"],
  ["nulls", '{"text":null,"slug":null,"name":null,"member_id":null,"emoji":null,"message_id":null}', "application/json"],
  ["unknown field", '{"text":"hi","is_admin":true,"__proto__":{"polluted":1}}', "application/json"],
  ["long strings", JSON.stringify({ text: "x".repeat(20000), slug: "s".repeat(5000), name: "n".repeat(5000), emoji: "e".repeat(5000), member_id: "user:" + "m".repeat(5000) }), "application/json"],
  ["sql-ish", JSON.stringify({ text: "'; drop table messages; --", slug: "a'; drop table channels;--", member_id: "user:x' or '1'='1", message_id: "1 or 1=1" }), "application/json"],
  ["unicode", JSON.stringify({ text: "\u0000\u202e\ud800", slug: "😀-slug", name: "\u0000", emoji: "\ud83d", member_id: "user:😀" }), "application/json"],
  ["wrong content type", '{"text":"hi"}', "text/plain"],
  ["form encoded", "text=hi&slug=x", "application/x-www-form-urlencoded"],
  ["xml", "<text>hi</text>", "application/xml"],
];

async function routes(): Promise<Array<{ method: string; path: string }>> {
  const doc = (await (await fetch(`${server.url}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const list = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => ({ method: m.toUpperCase(), path: path.replace(/\/$/, "") })));
  // Deleting archives the channel, after which writes are 410 before they look at the body: last.
  return [...list, { method: "GET", path: "/ws/messaging/{channel_id}" }].sort((a, b) => Number(a.method === "DELETE") - Number(b.method === "DELETE"));
}

/** Fills a route's parameters: the known channel and message, except `hostile` in parameter `at`. */
function fill(path: string, at: string | null, hostile: string): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => {
    if (name === at) return hostile;
    if (name === "id" || name === "channel_id") return channelId;
    if (name === "message_id") return messageId;
    if (name === "member_id" || name === "agent_id") return name === "agent_id" ? "agent:bot" : "user:owner";
    return "x";
  });
}

describe("hostile input never produces a 5xx or a stack trace", () => {
  test("every route has a documented schema for the battery to reach", async () => {
    const list = await routes();
    expect(list.length).toBeGreaterThan(20);
  });

  test("hostile path parameters and query strings", async () => {
    const outcomes: Outcome[] = [];
    for (const route of await routes()) {
      const params = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      for (const param of params) {
        for (const segment of HOSTILE_SEGMENTS) {
          const url = fill(route.path, param, segment);
          outcomes.push(await attempt(`${route.method} ${route.path} ${param}=${segment.slice(0, 30)}`, url, { method: route.method, headers: { "x-user-id": "user:owner", "content-type": "application/json" }, body: route.method === "GET" ? undefined : "{}" }));
        }
      }
      if (route.method === "GET") {
        const query = "?limit=1e309&offset=-99999999999999999999&before=%00&after=abc&q=%27%3B--&channel_id=..%2F&sender_id=" + "s".repeat(3000) + "&emoji=%ff&user_id=user:%00";
        outcomes.push(await attempt(`GET ${route.path} hostile query`, fill(route.path, null, "") + query, { headers: { "x-user-id": "user:owner" } }));
      }
    }
    expectRefusedCleanly(outcomes);
    // Unknown but well-formed ids are 404; malformed ones are refused by their pattern.
    expect((await attempt("unknown channel", `/api/messaging/channels/00000000-0000-0000-0000-000000000000`, { headers: { "x-user-id": "user:owner" } })).status).toBe(404);
    expect((await attempt("traversal", `/api/messaging/channels/..%2F..%2Fetc%2Fpasswd/messages`, { headers: { "x-user-id": "user:owner" } })).status).toBe(400);
  }, 120000);

  test("hostile bodies on every route that takes one", async () => {
    ({ channelId, messageId } = await freshChannel());
    const outcomes: Outcome[] = [];
    for (const route of await routes()) {
      if (route.method === "GET") continue;
      for (const [name, body, type] of HOSTILE_BODIES) {
        outcomes.push(await attempt(`${route.method} ${route.path} ${name}`, fill(route.path, null, ""), { method: route.method, headers: { "x-user-id": "user:owner", "content-type": type }, body }));
      }
      // Invalid UTF-8 bytes.
      const bytes = new Uint8Array([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]);
      outcomes.push(await attempt(`${route.method} ${route.path} invalid utf-8`, fill(route.path, null, ""), { method: route.method, headers: { "x-user-id": "user:owner", "content-type": "application/json" }, body: bytes }));
    }
    expectRefusedCleanly(outcomes);
  }, 120000);

  test("broken JSON is a 400 INVALID_BODY with a clear message on every JSON route", async () => {
    const { channelId: fresh } = await freshChannel();
    channelId = fresh;
    for (const route of await routes()) {
      if (route.method === "GET" || route.path.startsWith("/_matrix") || route.path.endsWith("/files")) continue;
      const res = await attempt(`${route.method} ${route.path}`, fill(route.path, null, ""), { method: route.method, headers: { "x-user-id": "user:owner", "content-type": "application/json" }, body: "{broken" });
      expect({ route: `${route.method} ${route.path}`, status: res.status, body: JSON.parse(res.body) }).toEqual({
        route: `${route.method} ${route.path}`,
        status: 400,
        body: { error: "INVALID_BODY", message: "the request body is not valid JSON", request_id: expect.any(String) },
      });
    }
  });

  /** One valid body for every JSON route that takes one. */
  function bodyRoutes(channelId: string, messageId: string): Array<[string, string, Record<string, unknown>]> {
    return [
      ["POST", "/api/messaging/channels", { slug: "ok-slug", name: "x", microdao_id: "microdao:daarion", visibility: "public" }],
      ["PATCH", `/api/messaging/channels/${channelId}`, { name: "y" }],
      ["POST", `/api/messaging/channels/${channelId}/messages`, { text: "hi" }],
      ["PATCH", `/api/messaging/channels/${channelId}/messages/${messageId}`, { text: "hi" }],
      ["POST", `/api/messaging/channels/${channelId}/messages/${messageId}/reactions`, { emoji: "👍" }],
      ["POST", `/api/messaging/channels/${channelId}/members`, { member_id: "user:z" }],
      ["PATCH", `/api/messaging/channels/${channelId}/members/user:owner`, { role: "admin" }],
      ["POST", `/api/messaging/channels/${channelId}/pins`, { message_id: messageId }],
      ["POST", `/api/messaging/channels/${channelId}/typing`, { typing: true }],
      ["POST", `/api/messaging/channels/${channelId}/read`, { message_id: messageId }],
      ["POST", `/internal/agents/agent:bot/post-to-channel`, { channel_id: channelId, text: "hi" }],
    ];
  }

  test("unknown fields are refused on every body", async () => {
    const { channelId, messageId } = await freshChannel();
    const bodies = bodyRoutes(channelId, messageId).map(([method, path, body]) => [method, path, { ...body, extra: 1 }] as const);
    for (const [method, path, body] of bodies) {
      const res = await server.api(path, { method, as: "user:owner", json: body });
      expect({ path, status: res.status, error: ((await res.json()) as { error: string }).error }).toEqual({ path, status: 400, error: "VALIDATION_FAILED" });
    }
  });

  test("an unknown __proto__ key is refused like any unknown field, on every body, and changes nothing", async () => {
    const { channelId, messageId } = await freshChannel();
    for (const [method, path, body] of bodyRoutes(channelId, messageId)) {
      // JSON.stringify cannot write a "__proto__" key from an object literal: splice it into the text.
      for (const raw of [JSON.stringify(body).replace(/^\{/, '{"__proto__":{"x":1},'), JSON.stringify({ ...body, nested: { ok: 1 } }).replace('"ok":1', '"__proto__":{"x":1}')]) {
        const res = await server.api(path, { method, as: "user:owner", headers: { "content-type": "application/json" }, body: raw });
        const answer = (await res.json()) as { error: string; message: string };
        expect({ path, status: res.status, error: answer.error, namesField: answer.message.includes("__proto__") }).toEqual({ path, status: 400, error: "VALIDATION_FAILED", namesField: true });
      }
    }
    const send = await server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as: "user:owner", headers: { "content-type": "application/json" }, body: '{"text":"hi","__proto__":{"x":1}}' });
    expect(await send.json()).toEqual({ error: "VALIDATION_FAILED", message: "invalid body field '__proto__': unknown field", request_id: expect.any(String) });
    const [count] = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channelId}`;
    expect(count!.n).toBe(1);
  });

  test("multipart/form-data on a JSON route is 400 INVALID_BODY on every body route, and changes nothing", async () => {
    const { channelId, messageId } = await freshChannel();
    for (const [method, path, body] of bodyRoutes(channelId, messageId)) {
      const form = new FormData();
      for (const [key, value] of Object.entries(body)) form.set(key, String(value));
      const res = await server.api(path, { method, as: "user:owner", body: form });
      expect({ path, status: res.status, body: await res.json() }).toEqual({
        path,
        status: 400,
        body: { error: "INVALID_BODY", message: "multipart bodies are accepted only by file uploads (POST …/files); send application/json", request_id: expect.any(String) },
      });
    }
    const [count] = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channelId}`;
    expect(count!.n).toBe(1);
  });

  test("a chunked body that never ends is answered at once on JSON routes: multipart 400 unread, JSON 413 at the cap", async () => {
    const { channelId } = await freshChannel();
    const send = (type: string, body: ReadableStream<Uint8Array>) =>
      fetch(`${server.url}/api/messaging/channels/${channelId}/messages`, {
        method: "POST",
        headers: { "x-user-id": "user:owner", "content-type": type },
        body,
        duplex: "half",
      } as RequestInit);
    // 2 MiB of a file part sent, and the body still open: a server that buffers it to the end never answers.
    const boundary = "----daarion-test";
    const part = `--${boundary}\r\ncontent-disposition: form-data; name="text"\r\n\r\n`;
    const multipart = openBody([part, ...Array.from({ length: 32 }, () => "m".repeat(64 * 1024))]);
    try {
      const res = await answerWithin(send(`multipart/form-data; boundary=${boundary}`, multipart.body), 5000);
      expect({ status: res.status, error: ((await res.json()) as { error: string }).error }).toEqual({ status: 400, error: "INVALID_BODY" });
    } finally {
      multipart.close();
    }
    const json = openBody(['{"text":"', ...Array.from({ length: 32 }, () => "j".repeat(64 * 1024))]);
    try {
      const res = await answerWithin(send("application/json", json.body), 5000);
      expect({ status: res.status, error: ((await res.json()) as { error: string }).error }).toEqual({ status: 413, error: "PAYLOAD_TOO_LARGE" });
    } finally {
      json.close();
    }
    const [count] = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channelId}`;
    expect(count!.n).toBe(1);
  });

  test("a body over MAX_BODY_BYTES is 413 PAYLOAD_TOO_LARGE, declared or chunked; uploads keep their own limit", async () => {
    const { channelId } = await freshChannel();
    const big = JSON.stringify({ text: "x".repeat(70000) });
    const declared = await server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as: "user:owner", json: JSON.parse(big) });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toEqual({ error: "PAYLOAD_TOO_LARGE", message: "the request body is larger than 65536 bytes", request_id: expect.any(String) });
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode(i === 0 ? '{"text":"' + "y".repeat(9990) : "y".repeat(10000)));
        c.close();
      },
    });
    const chunked = await fetch(`${server.url}/api/messaging/channels/${channelId}/messages`, {
      method: "POST",
      headers: { "x-user-id": "user:owner", "content-type": "application/json" },
      body: chunks,
    });
    expect(chunked.status).toBe(413);
    expect(((await chunked.json()) as { error: string }).error).toBe("PAYLOAD_TOO_LARGE");
    const count = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channelId} and content_preview like 'xxx%'`;
    expect(count[0]!.n).toBe(0);

    // A 100 KB file is over MAX_BODY_BYTES but well within MAX_UPLOAD_BYTES.
    const form = new FormData();
    form.set("file", new File([new Uint8Array(100_000)], "big.pdf", { type: "application/pdf" }));
    const upload = await server.api(`/api/messaging/channels/${channelId}/files`, { method: "POST", as: "user:owner", body: form });
    expect(upload.status).toBe(201);
  });

  test("huge or malformed headers are refused without a 5xx", async () => {
    const { channelId } = await freshChannel();
    const outcomes: Outcome[] = [];
    const path = `/api/messaging/channels/${channelId}/messages`;
    for (const [name, headers] of [
      ["huge X-User-Id", { "x-user-id": "user:" + "a".repeat(12000) }],
      ["long X-User-Id", { "x-user-id": "user:" + "a".repeat(100) }],
      ["unicode X-User-Id", { "x-user-id": "user:%F0%9F%98%80" }],
      ["huge Idempotency-Key", { "x-user-id": "user:owner", "idempotency-key": "k".repeat(12000) }],
      ["long Idempotency-Key", { "x-user-id": "user:owner", "idempotency-key": "k".repeat(300) }],
      ["spaces in Idempotency-Key", { "x-user-id": "user:owner", "idempotency-key": "a key" }],
      ["non-numeric Content-Length is the transport's business", { "x-user-id": "user:owner" }],
    ] as Array<[string, Record<string, string>]>) {
      outcomes.push(await attempt(name, path, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: '{"text":"hi"}' }));
    }
    expectRefusedCleanly(outcomes.filter((o) => o.status !== 201));
    expect(outcomes.map((o) => o.status)).toEqual([401, 401, 401, 400, 400, 400, 201]);
    // Headers beyond what the HTTP server accepts at all get a 431, never a 5xx.
    const enormous = await fetch(server.url + path, { method: "POST", headers: { "x-user-id": "user:owner", "x-junk": "j".repeat(200_000) }, body: "{}" }).catch(() => null);
    if (enormous) expect(enormous.status).toBeLessThan(500);
  });
});
