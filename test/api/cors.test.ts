import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config.ts";
import { allowedOrigin } from "../../src/http/cors.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

/** A browser's preflight: OPTIONS with Origin and Access-Control-Request-Method, nothing else. */
const preflight = (server: TestServer, path: string, origin: string, method = "POST") =>
  fetch(server.url + path, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": "authorization, content-type, idempotency-key" },
  });
const corsHeaders = (res: Response) => [...res.headers.keys()].filter((k) => k.startsWith("access-control-"));

describe("CORS with CORS_ORIGINS (local backend)", () => {
  let server: TestServer;
  const FRONTEND = "https://app.daarion.example";
  beforeAll(async () => {
    // Every request is rate-limited to one per address: a preflight must not draw from it.
    server = await startTestServer({ CORS_ORIGINS: `${FRONTEND}, https://other.example`, RATE_LIMIT_ADDRESS_PER_MIN: "1", RATE_LIMIT_ADDRESS_BURST: "1", INTERNAL_SERVICE_TOKEN: "internal-token-0123456789abcdef" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("a preflight from an allowed origin is 204 with the methods and headers a client needs, without auth or rate limit", async () => {
    for (const path of ["/api/messaging/channels", "/api/messaging/channels/x/messages", "/internal/agents/agent:a/post-to-channel", "/api/messaging/channels"]) {
      const res = await preflight(server, path, FRONTEND);
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(FRONTEND);
      expect(res.headers.get("access-control-allow-methods")).toContain("POST");
      expect(res.headers.get("access-control-allow-methods")).toContain("DELETE");
      const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase();
      for (const h of ["authorization", "content-type", "idempotency-key", "x-user-id"]) expect(allowed).toContain(h);
      expect(res.headers.get("vary")).toContain("Origin");
    }
  });

  test("answers from an allowed origin expose the headers clients read", async () => {
    const res = await server.api("/api/messaging/channels", { as: "user:alice", headers: { origin: FRONTEND } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(FRONTEND);
    const exposed = res.headers.get("access-control-expose-headers")!.toLowerCase();
    for (const h of ["x-next-cursor", "x-next-offset", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "idempotent-replayed", "x-request-id"]) {
      expect(exposed).toContain(h);
    }
  });

  test("another origin gets no CORS header at all, on a preflight or a request", async () => {
    const pre = await preflight(server, "/api/messaging/channels", "https://evil.example");
    expect(pre.status).toBe(204);
    expect(corsHeaders(pre)).toEqual([]);
    const res = await fetch(server.url + "/health", { headers: { origin: "https://evil.example" } });
    expect(res.status).toBe(200);
    expect(corsHeaders(res)).toEqual([]);
    const sameMachine = await fetch(server.url + "/health", { headers: { origin: "http://localhost:5173" } });
    expect(corsHeaders(sameMachine)).toEqual([]);
  });
});

describe("CORS defaults", () => {
  const dev = allowedOrigin(loadConfig({}));
  const production = allowedOrigin(loadConfig({ AUTH_MODE: "jwt", JWT_SECRET: "s".repeat(16) + "0123456789abcdef", JWT_ISSUER: "i", JWT_AUDIENCE: "a", INTERNAL_SERVICE_TOKEN: "q".repeat(8) + "0123456789abcdefghijklmnopqrstuv" }));

  test("dev allows this machine's origins only", () => {
    expect(dev("http://localhost:5173")).toBe(true);
    expect(dev("http://127.0.0.1:3000")).toBe(true);
    expect(dev("http://localhost")).toBe(true);
    expect(dev("https://localhost.evil.example")).toBe(false);
    expect(dev("http://localhost:5173.evil.example")).toBe(false);
    expect(dev("https://app.daarion.example")).toBe(false);
  });

  test("production allows none unless CORS_ORIGINS names them", () => {
    expect(production("http://localhost:5173")).toBe(false);
    expect(production("https://app.daarion.example")).toBe(false);
  });
});

describe("CORS in dev (local backend)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("a dev frontend on localhost gets its preflight answered", async () => {
    const res = await preflight(server, "/api/messaging/channels", "http://localhost:5173");
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
  });
});
