import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { Elysia } from "elysia";
import { createLogger } from "../../src/log.ts";
import { requestId } from "../../src/http/request-id.ts";
import { errorHandler } from "../../src/http/errors.ts";

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
    const firstIdle = await stoppedIdle(0);
    const send = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:rid-actor", json: { text: "hi" }, headers: { "x-request-id": "r-spawn" } });
    expect(send.status).toBe(201);
    const restarted = await logLine((l) => l.msg === "actor started" && l.channel_id === channel.id && (l.time as number) >= (firstIdle.time as number));
    expect(restarted).not.toHaveProperty("request_id");
    expect(await stoppedIdle(restarted.time as number)).not.toHaveProperty("request_id");
    expect(await logLine((l) => l.msg === "request" && l.request_id === "r-spawn")).toMatchObject({ status: 201, channel_id: channel.id });
  }, 15000);
});
