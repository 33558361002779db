import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";

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
