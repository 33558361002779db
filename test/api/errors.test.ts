import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { Writable } from "node:stream";
import { Elysia } from "elysia";
import { createLogger } from "../../src/log.ts";
import { requestId } from "../../src/http/request-id.ts";
import { errorHandler } from "../../src/http/errors.ts";
import { answerWithin, openBody } from "../helpers/open-body.ts";

// Identity, bad input, health and docs.
{
  let server: TestServer;
  let channelId: string;
  beforeAll(async () => {
    server = await startTestServer();
    channelId = (await createChannel(server, "user:admin")).id;
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  function expectErrorBody(body: unknown) {
    expect(body).toEqual({ error: expect.stringMatching(/^[A-Z_]+$/), message: expect.any(String), request_id: expect.any(String) });
    expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+|stack|postgres|select |insert /i);
  }

  describe("identity", () => {
    const paths = () => [
      ["GET", "/api/messaging/channels"],
      ["POST", "/api/messaging/channels"],
      ["GET", `/api/messaging/channels/${channelId}`],
      ["PATCH", `/api/messaging/channels/${channelId}`],
      ["GET", `/api/messaging/channels/${channelId}/messages`],
      ["POST", `/api/messaging/channels/${channelId}/messages`],
      ["GET", `/api/messaging/channels/${channelId}/members`],
      ["POST", `/api/messaging/channels/${channelId}/members`],
    ];
    const bodies: Record<string, unknown> = {
      "POST /api/messaging/channels": { slug: "x", name: "x", microdao_id: "microdao:x" },
      PATCH: { name: "x" },
      messages: { text: "x" },
      members: { member_id: "user:x" },
    };
    const bodyFor = (method: string, path: string) =>
      method === "GET"
        ? undefined
        : (bodies[`${method} ${path}`] ?? bodies[method] ?? (path.endsWith("messages") ? bodies.messages : bodies.members));

    for (const header of [null, "alice", "admin:root", "user:", "user:ALICE", "user:a b"]) {
      test(`X-User-Id ${header === null ? "missing" : JSON.stringify(header)} is 401 on every endpoint`, async () => {
        for (const [method, path] of paths()) {
          const res = await server.api(path!, {
            method,
            headers: header === null ? {} : { "x-user-id": header },
            json: bodyFor(method!, path!),
          });
          expect(`${method} ${path} ${res.status}`).toBe(`${method} ${path} 401`);
          expectErrorBody(await res.json());
        }
      });
    }
  });

  describe("bad input", () => {
    test("broken JSON is 400 with a clear message", async () => {
      const res = await server.api("/api/messaging/channels", {
        method: "POST",
        as: "user:admin",
        headers: { "content-type": "application/json" },
        body: '{"slug": "x",',
      });
      expect(res.status).toBe(400);
      const body = await res.json();
      expectErrorBody(body);
      expect(body.error).toBe("INVALID_BODY");
    });

    test("validation errors name the field", async () => {
      const res = await server.api("/api/messaging/channels", {
        method: "POST",
        as: "user:admin",
        json: { slug: "ok", name: "x", microdao_id: "daarion" },
      });
      expect(res.status).toBe(400);
      const body = await res.json();
      expectErrorBody(body);
      expect(body.message).toContain("microdao_id");
    });

    test("unknown ids are 404, malformed ids 400, unknown routes 404 — all JSON", async () => {
      const cases: Array<[string, number]> = [
        [`/api/messaging/channels/${crypto.randomUUID()}`, 404],
        [`/api/messaging/channels/${crypto.randomUUID()}/messages`, 404],
        [`/api/messaging/channels/${crypto.randomUUID()}/members`, 404],
        [`/api/messaging/channels/${channelId}/messages/${crypto.randomUUID()}`, 404],
        [`/api/messaging/channels/123/messages`, 400],
        [`/api/messaging/channels/${channelId}/messages/abc`, 400],
        [`/api/messaging/nothing-here`, 404],
      ];
      for (const [path, status] of cases) {
        const res = await server.api(path, { as: "user:admin" });
        expect(`${path} ${res.status}`).toBe(`${path} ${status}`);
        expectErrorBody(await res.json());
      }
    });

    test("PATCH with an empty body or unknown fields is 400 and changes nothing", async () => {
      for (const json of [{}, { name: "x", owner: "me" }, { visibility: "secret" }]) {
        const res = await server.api(`/api/messaging/channels/${channelId}`, { method: "PATCH", as: "user:admin", json });
        expect(res.status).toBe(400);
        expectErrorBody(await res.json());
      }
      const [row] = await server.app.deps.sql`select name, visibility from channels where id = ${channelId}`;
      expect(row).toEqual({ name: "Test channel", visibility: "public" });
    });
  });

  describe("health and docs", () => {
    test("GET /health", async () => {
      const res = await server.api("/health");
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "healthy", service: "messaging-service", matrix: "local" });
    });

    test("OpenAPI documents every endpoint with its TypeBox schemas; Swagger UI at /docs", async () => {
      const spec = await (await server.api("/docs/json")).json();
      const paths = Object.keys(spec.paths);
      for (const p of [
        "/api/messaging/channels",
        "/api/messaging/channels/{id}",
        "/api/messaging/channels/{id}/messages",
        "/api/messaging/channels/{id}/messages/{message_id}",
        "/api/messaging/channels/{id}/members",
        "/internal/agents/{agent_id}/post-to-channel",
        "/internal/messaging/channels/{id}/context",
        "/health",
      ]) {
        expect(paths).toContain(p);
      }
      const send = spec.paths["/api/messaging/channels/{id}/messages"].post;
      const schema = send.requestBody.content["application/json"].schema;
      expect(schema.properties.text).toMatchObject({ minLength: 1, maxLength: 10000 });
      // Only what the server takes: JSON bodies, multipart for uploads alone.
      expect(Object.keys(send.requestBody.content)).toEqual(["application/json"]);
      expect(Object.keys(spec.paths["/api/messaging/channels/{id}/files"].post.requestBody.content)).toEqual(["multipart/form-data"]);
      expect(Object.keys(send.responses)).toEqual(expect.arrayContaining(["201", "400", "401", "403", "404", "502", "503"]));
      const ui = await server.api("/docs");
      expect(ui.status).toBe(200);
      expect(await ui.text()).toContain("<html");
    });
  });
}

// The request id on answers and log lines.
{
  /** The service's log lines, parsed, as the server writes them. */
  const lines: Array<Record<string, unknown>> = [];
  const onLine = new Set<() => void>();
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) lines.push(JSON.parse(line));
      for (const notify of onLine) notify();
      done();
    },
  });

  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(
      // Idle actors passivate at once, so that a later request spawns one again.
      { RATE_LIMIT_READ_PER_MIN: "60", RATE_LIMIT_READ_BURST: "1", ACTOR_IDLE_MS: "200" },
      { log: createLogger("info", { isTTY: false, destination }) },
    );
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  /** Resolves with the first log line that matches, once it is written (the request line follows the answer). */
  function logLine(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        onLine.delete(check);
        reject(new Error(`no such log line among:\n${lines.map((l) => JSON.stringify(l)).join("\n")}`));
      }, 5000);
      function check() {
        const found = lines.find(match);
        if (!found) return;
        clearTimeout(timer);
        onLine.delete(check);
        resolve(found);
      }
      onLine.add(check);
      check();
    });
  }

  describe("X-Request-Id", () => {
    test("a caller's id is echoed on a success", async () => {
      const res = await server.api("/health", { headers: { "x-request-id": "client-abc.123_~!" } });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toBe("client-abc.123_~!");
    });

    test("without one, or with one that is not 1-128 printable characters without spaces, the service makes one", async () => {
      for (const given of [undefined, "has space", "x".repeat(129), "tab\tinside", "é"]) {
        const res = await server.api("/health", given === undefined ? {} : { headers: { "x-request-id": given } });
        expect(res.status).toBe(200);
        expect(res.headers.get("x-request-id")).toMatch(UUID);
      }
      const a = await server.api("/health");
      const b = await server.api("/health");
      expect(a.headers.get("x-request-id")).not.toBe(b.headers.get("x-request-id"));
      expect((await server.api("/health", { headers: { "x-request-id": "y".repeat(128) } })).headers.get("x-request-id")).toBe("y".repeat(128));
    });

    test("every refusal carries it in the header and as request_id in its body", async () => {
      const channel = await createChannel(server, "user:rid-owner");
      const refusals: Array<[string, () => Promise<Response>, number]> = [
        ["404 route", () => server.api("/no/such/route", { headers: { "x-request-id": "r-404" } }), 404],
        ["401", () => server.api("/api/messaging/channels", { headers: { "x-request-id": "r-401" } }), 401],
        ["400", () => server.api("/api/messaging/channels", { method: "POST", as: "user:rid-owner", json: { slug: 1 }, headers: { "x-request-id": "r-400" } }), 400],
        ["404 channel", () => server.api(`/api/messaging/channels/${crypto.randomUUID()}`, { as: "user:rid-reader", headers: { "x-request-id": "r-404c" } }), 404],
        ["websocket refusal", () => fetch(`${server.url}/ws/messaging/${channel.id}`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13", "x-request-id": "r-ws" } }), 401],
      ];
      for (const [name, call, status] of refusals) {
        const res = await call();
        expect(`${name}: ${res.status}`).toBe(`${name}: ${status}`);
        const id = res.headers.get("x-request-id");
        expect(id).toStartWith("r-");
        const body = (await res.json()) as Record<string, unknown>;
        expect(body).toEqual({ error: expect.any(String), message: expect.any(String), request_id: id });
      }
      // The homeserver-facing API answers Matrix's way, with the id beside errcode and error.
      const matrix = await server.api("/_matrix/app/v1/transactions/t1", { method: "PUT", json: { events: [] }, headers: { "x-request-id": "r-matrix" } });
      expect(matrix.status).toBe(401);
      expect(matrix.headers.get("x-request-id")).toBe("r-matrix");
      expect(await matrix.json()).toEqual({ errcode: "M_UNAUTHORIZED", error: expect.any(String), request_id: "r-matrix" });
      // The read bucket holds one request: the second is 429, with the id made for it.
      expect((await server.api("/api/messaging/channels", { as: "user:rid-limited" })).status).toBe(200);
      const limited = await server.api("/api/messaging/channels", { as: "user:rid-limited" });
      expect(limited.status).toBe(429);
      expect(limited.headers.get("x-request-id")).toMatch(UUID);
      expect(((await limited.json()) as { request_id: string }).request_id).toBe(limited.headers.get("x-request-id")!);
    });

    test("the request's log line and what the service logs while serving it carry it", async () => {
      const res = await server.api("/api/messaging/channels", {
        method: "POST",
        as: "user:rid-logger",
        json: { slug: `rid-${Date.now().toString(36)}`, name: "Logged", microdao_id: "microdao:daarion", visibility: "public" },
        headers: { "x-request-id": "r-logged-create" },
      });
      expect(res.status).toBe(201);
      const channel = (await res.json()) as { id: string };
      expect(await logLine((l) => l.msg === "channel created" && l.channel_id === channel.id)).toMatchObject({ request_id: "r-logged-create" });
      expect(await logLine((l) => l.msg === "request" && String(l.route).startsWith("/api/messaging/channels") && l.status === 201 && l.request_id === "r-logged-create")).toMatchObject({
        method: "POST",
      });
      // A refusal's request line too.
      await server.api("/no/such/route", { headers: { "x-request-id": "r-logged-404" } });
      expect(await logLine((l) => l.msg === "request" && l.request_id === "r-logged-404")).toMatchObject({ status: 404 });
      // Lines outside any request carry none.
      expect(lines.find((l) => l.msg === "daarion-messaging listening")).not.toHaveProperty("request_id");
    }, 15000);

    test("an unexpected error's log line and its 500 body carry it", async () => {
      const app = new Elysia()
        .use(requestId())
        .use(errorHandler(createLogger("info", { isTTY: false, destination })))
        .get("/explode", () => {
          throw new TypeError("kaboom");
        });
      const res = await app.handle(new Request("http://service.test/explode", { headers: { "x-request-id": "r-explode" } }));
      expect(res.status).toBe(500);
      expect(res.headers.get("x-request-id")).toBe("r-explode");
      expect(await res.json()).toEqual({ error: "INTERNAL", message: "internal error", request_id: "r-explode" });
      expect(await logLine((l) => l.msg === "unhandled error" && l.path === "/explode")).toMatchObject({ request_id: "r-explode" });
    });

    test("a channel actor spawned by a request does not carry that request's id on its own lines", async () => {
      const channel = await createChannel(server, "user:rid-actor");
      const stoppedIdle = (after: number) => logLine((l) => l.msg === "actor stopped" && l.channel_id === channel.id && l.reason === "idle" && (l.time as number) >= after);
      // A first write spawns the channel's actor; once it has passivated, the next request spawns a fresh one.
      const warmUp = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:rid-actor", json: { text: "warm up" } });
      expect(warmUp.status).toBe(201);
      const firstIdle = await stoppedIdle(0);
      const send = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:rid-actor", json: { text: "hi" }, headers: { "x-request-id": "r-spawn" } });
      expect(send.status).toBe(201);
      const restarted = await logLine((l) => l.msg === "actor started" && l.channel_id === channel.id && (l.time as number) >= (firstIdle.time as number));
      expect(restarted).not.toHaveProperty("request_id");
      expect(await stoppedIdle(restarted.time as number)).not.toHaveProperty("request_id");
      expect(await logLine((l) => l.msg === "request" && l.request_id === "r-spawn")).toMatchObject({ status: 201, channel_id: channel.id });
    }, 15000);
  });
}

// Hostile input.
{
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
}
