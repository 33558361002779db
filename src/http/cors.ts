import { Elysia } from "elysia";
import { cors } from "@elysiajs/cors";
import { authMode, isProduction, type Config } from "../config.ts";

/** Response headers a browser client reads: paging, rate limits, replays, request ids. */
export const EXPOSED_HEADERS = [
  "X-Next-Cursor",
  "X-Next-Offset",
  "Retry-After",
  "X-RateLimit-Limit",
  "X-RateLimit-Remaining",
  "X-RateLimit-Reset",
  "Idempotent-Replayed",
  "X-Request-Id",
];

const LOCAL_ORIGIN = /^http:\/\/(localhost|127\.0\.0\.1)(:\d+)?$/;

/**
 * Which origins may call the API from a browser: CORS_ORIGINS (comma-separated origins, `*` for
 * any) when set; otherwise none in production and this machine's (http://localhost:*,
 * http://127.0.0.1:*) in dev.
 */
export function allowedOrigin(config: Config): (origin: string) => boolean {
  const listed = (config.CORS_ORIGINS ?? "")
    .split(",")
    .map((o) => o.trim().replace(/\/$/, ""))
    .filter((o) => o !== "");
  if (listed.includes("*")) return () => true;
  if (listed.length > 0) return (origin) => listed.includes(origin);
  if (isProduction(config)) return () => false;
  return (origin) => LOCAL_ORIGIN.test(origin);
}

/**
 * @elysiajs/cors for the allowed origins. It sets some Access-Control-* headers on every answer;
 * for any other origin they are taken off again, so such a caller sees no CORS header at all.
 * Mounted before authentication and rate limiting: a preflight carries no credentials and is
 * answered here.
 */
export function corsPolicy(config: Config) {
  const allowed = allowedOrigin(config);
  const isAllowed = (request: Request) => {
    const origin = request.headers.get("origin");
    return origin !== null && allowed(origin);
  };
  const stripCors = (headers: Record<string, unknown>) => {
    for (const key of Object.keys(headers)) if (key.toLowerCase().startsWith("access-control-")) delete headers[key];
  };
  const allowedHeaders = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"];
  if (authMode(config) === "dev") allowedHeaders.push("X-User-Id");
  return new Elysia({ name: "cors-policy" })
    .onRequest(({ request, set }) => {
      if (isAllowed(request)) return;
      stripCors(set.headers);
      if (request.method === "OPTIONS" && request.headers.has("access-control-request-method")) {
        return new Response(null, { status: 204 });
      }
    })
    .use(
      cors({
        origin: isAllowed,
        methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allowedHeaders,
        exposeHeaders: EXPOSED_HEADERS,
        credentials: false,
        maxAge: 600,
      }),
    )
    .onRequest(({ request, set }) => {
      if (!isAllowed(request)) stripCors(set.headers);
    });
}
