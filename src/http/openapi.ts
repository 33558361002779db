import { Elysia, type TSchema } from "elysia";
import { unwrapSchema } from "@elysiajs/openapi/openapi";
import { NAMED_SCHEMAS } from "./openapi-components.ts";
import { OPERATION_IDS } from "./openapi-ids.ts";

type Json = Record<string, unknown>;

export const OPENAPI_VERSION = "3.1.2";
type Parameter = { in: string; name: string };
type Response = { description?: string; headers?: Json; content?: Record<string, unknown> };
type Operation = {
  operationId?: string;
  tags?: string[];
  security?: Array<Record<string, string[]>>;
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, unknown> };
  responses?: Record<string, Response>;
};
type Document = { paths?: Record<string, Record<string, Operation>>; components?: Json; tags?: Array<{ name: string }> };

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errorResponse = (description: string, headers?: Json): Response => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/json": { schema: ref("Error") } },
});
const header = (description: string, type: "string" | "integer" = "string") => ({ description, schema: { type } });

const RATE_LIMIT_HEADERS = {
  "X-RateLimit-Limit": header("Capacity of the tightest token bucket this request drew from", "integer"),
  "X-RateLimit-Remaining": header("Tokens left in that bucket", "integer"),
  "X-RateLimit-Reset": header("Seconds until that bucket is full again", "integer"),
};

const SECURITY_SCHEMES = {
  bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "AUTH_MODE=jwt: a JWT whose `sub` is the caller (`user:…` or `agent:…`)." },
  devUserId: { type: "apiKey", in: "header", name: "X-User-Id", description: "AUTH_MODE=dev only: the caller, trusted unverified." },
  internalToken: { type: "apiKey", in: "header", name: "X-Internal-Service-Token", description: "INTERNAL_SERVICE_TOKEN, for /internal/* callers." },
  homeserverToken: { type: "http", scheme: "bearer", description: "The homeserver's hs_token (application-service registration)." },
};

/** Header parameters that the security schemes describe instead. */
const CREDENTIAL_HEADERS = new Set(["authorization", "x-user-id", "x-internal-service-token"]);
const HTTP_METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

/**
 * What @elysiajs/openapi cannot say from the routes' schemas, added to /docs/json so clients and
 * the fuzzer (scripts/fuzz.ts) can hold the server to it: readable operation ids
 * (src/http/openapi-ids.ts), the credentials as security schemes, the shared schemas as
 * components (src/http/openapi-components.ts), and the answers of the shared middleware: 400
 * for a request that fails its schema, 401 without an identity, 413 past the body cap, 429 with
 * Retry-After from the rate limiter, 503 when a backend is down, the Idempotency-Key answers
 * (409/422, Idempotent-Replayed) on POST, and the paging and rate-limit headers. Bodies are
 * JSON (multipart for uploads) and answers JSON only.
 */
export function completeOpenApi(doc: Document, bodies: Map<string, unknown> = new Map()): Document {
  const paths: NonNullable<Document["paths"]> = {};
  const named = namedSchemas();
  for (const [rawPath, rawOps] of Object.entries(doc.paths ?? {})) {
    const path = rawPath.length > 1 ? rawPath.replace(/\/$/, "") : rawPath;
    const ops: Record<string, Operation> = {};
    for (const [method, op] of Object.entries(rawOps)) {
      if (!HTTP_METHODS.has(method)) continue; // the WebSocket (`ws`) is not an HTTP operation
      ops[method] = completeOperation(method, path, op, bodies.get(`${method.toUpperCase()} ${path}`));
    }
    paths[path] = ops;
  }
  const completed = tidy({ ...doc, paths }) as Document;
  const schemas: Json = {};
  for (const [name, schema] of named) schemas[name] = substitute(schema, named, name);
  completed.paths = substitute(completed.paths, named) as Document["paths"];
  completed.components = { ...(completed.components ?? {}), schemas, securitySchemes: SECURITY_SCHEMES };
  return completed;
}

function completeOperation(method: string, path: string, op: Operation, body: unknown): Operation {
  const key = `${method.toUpperCase()} ${path}`;
  const id = OPERATION_IDS[key];
  if (id) op.operationId = id;
  const responses = (op.responses ??= {});
  for (const [status, response] of Object.entries(responses)) {
    // A schema-less answer (204: t.Void()) has no content; JSON is the only type the routes return.
    const json = response.content?.["application/json"];
    if (json && typeof json === "object") response.content = { "application/json": json };
    else delete response.content;
    response.description ??= `Status ${status}`;
  }
  if (Object.keys(responses).length === 0) responses["200"] = { description: "OK" };
  // Bodies are JSON, and multipart only for uploads (src/http/body-limit.ts refuses it elsewhere).
  // The plugin leaves the content empty when the parser is a function (src/http/body-limit.ts's).
  const bodyType = path.endsWith("/files") ? "multipart/form-data" : "application/json";
  const media = op.requestBody?.content?.[bodyType] ?? (body ? { schema: unwrapSchema(body as TSchema, undefined, "input", OPENAPI_VERSION) } : undefined);
  if (op.requestBody && media) op.requestBody.content = { [bodyType]: JSON.parse(JSON.stringify(media)) };

  if (path.startsWith("/_matrix/")) {
    op.security = [{ homeserverToken: [] }];
    return op;
  }
  const params = (op.parameters ?? []).filter((p) => !(p.in === "header" && CREDENTIAL_HEADERS.has(p.name)));
  const named = op.parameters?.some((p) => p.in === "header" && (p.name === "x-user-id" || p.name === "authorization")) ?? false;
  op.parameters = params.filter((p) => method === "post" || !(p.in === "header" && p.name === "idempotency-key"));
  if (op.parameters.length === 0) delete op.parameters;

  const internal = path.startsWith("/internal/");
  if (internal) op.security = named ? [{ internalToken: [], bearerAuth: [] }, { internalToken: [], devUserId: [] }] : [{ internalToken: [] }];
  else if (named) op.security = [{ bearerAuth: [] }, { devUserId: [] }];
  else op.security = [];

  const takesInput = op.requestBody !== undefined || params.some((p) => p.in === "query" || p.in === "path");
  if (takesInput) responses["400"] ??= errorResponse("The request does not match its schema (VALIDATION_FAILED, INVALID_BODY)");
  // The body cap (src/http/body-limit.ts) answers before the route: any route with a body may get it.
  if (op.requestBody !== undefined) responses["413"] ??= errorResponse("The body is larger than MAX_BODY_BYTES (PAYLOAD_TOO_LARGE)");
  if (named || internal) responses["401"] ??= errorResponse("No or malformed credentials (UNAUTHENTICATED)");
  if (internal) responses["403"] ??= errorResponse("X-Internal-Service-Token is not valid (FORBIDDEN)");
  if (method === "post") {
    responses["400"] ??= errorResponse("The request does not match its schema, or a malformed Idempotency-Key");
    responses["409"] ??= errorResponse("A request with this Idempotency-Key is still running (IDEMPOTENCY_IN_PROGRESS)");
    responses["422"] ??= errorResponse("This Idempotency-Key was used with another body (IDEMPOTENCY_KEY_REUSED)");
  }
  // Liveness and readiness probes draw from no bucket and have no backend of their own to lose.
  if (path === "/health" || path === "/ready") {
    const notReady = responses["503"];
    if (notReady) notReady.headers = { "Retry-After": header("Seconds until asking again is worth it", "integer") };
    return op;
  }
  // src/http/rate-limit.ts: every /api and /internal request draws from a token bucket.
  responses["429"] ??= errorResponse("A rate limit is exhausted (RATE_LIMITED)", {
    "Retry-After": header("Seconds until the request may succeed", "integer"),
    ...RATE_LIMIT_HEADERS,
  });
  responses["503"] ??= errorResponse("The database or the homeserver is unavailable; retry later");
  for (const [status, response] of Object.entries(responses)) {
    if (!status.startsWith("2")) continue;
    const headers: Json = { ...RATE_LIMIT_HEADERS, ...(response.headers ?? {}) };
    if (params.some((p) => p.in === "query" && p.name === "cursor")) headers["X-Next-Cursor"] = header("Present when an older page exists: its `cursor`");
    if (params.some((p) => p.in === "query" && p.name === "offset")) headers["X-Next-Offset"] = header("Present when more matches may follow: the next page's `offset`", "integer");
    if (method === "post") headers["Idempotent-Replayed"] = header("`true` when this is the stored answer to an earlier request with the same Idempotency-Key");
    response.headers = headers;
  }
  return op;
}

/** The named schemas as the document spells them, each with its canonical text to find it by. */
function namedSchemas(): Map<string, Json> {
  const named = new Map<string, Json>();
  for (const [name, schema] of Object.entries(NAMED_SCHEMAS)) {
    named.set(name, tidy(JSON.parse(JSON.stringify(unwrapSchema(schema, undefined, "output", OPENAPI_VERSION)))) as Json);
  }
  return named;
}

/** Replaces every occurrence of a named schema (but `self` at the top) with a $ref to it. */
function substitute(value: unknown, named: Map<string, Json>, self?: string): unknown {
  const byText = new Map([...named].map(([name, schema]) => [canonical(schema), name]));
  const walk = (node: unknown, top: boolean): unknown => {
    if (Array.isArray(node)) return node.map((n) => walk(n, false));
    if (node === null || typeof node !== "object") return node;
    const name = byText.get(canonical(node));
    if (name && !(top && name === self)) return ref(name);
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, false)]));
  };
  return walk(value, true);
}

function canonical(node: unknown): string {
  return JSON.stringify(node, (_, v) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v,
  );
}

/**
 * OpenAPI 3.1 says null in `type`, so the 3.0-style `nullable` beside it is dropped; and the
 * string branch of Elysia's numeric types (a number given as text) loses its numeric default.
 */
function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (node === null || typeof node !== "object") return node;
  const fields = node as Json;
  const wrongDefault = fields.type === "string" && "default" in fields && typeof fields.default !== "string";
  return Object.fromEntries(
    Object.entries(fields)
      .filter(([k]) => k !== "nullable" && !(wrongDefault && k === "default"))
      .map(([k, v]) => [k, tidy(v)]),
  );
}

type Route = { method: string; path: string; hooks: { body?: unknown } };

/** Applies completeOpenApi to the openapi plugin's /docs/json answer; routes() gives the app's routes' body schemas. */
export const openApiCompletion = (specPath: string, routes: () => readonly Route[]) =>
  new Elysia({ name: "openapi-completion" }).onAfterHandle({ as: "global" }, ({ request, response }) => {
    if (new URL(request.url).pathname !== specPath) return;
    if (response instanceof Response || typeof response !== "object" || response === null) return;
    const bodies = new Map<string, unknown>();
    for (const route of routes()) {
      if (!route.hooks.body) continue;
      const path = route.path.replace(/:(\w+)/g, "{$1}").replace(/(.)\/$/, "$1");
      bodies.set(`${route.method.toUpperCase()} ${path}`, route.hooks.body);
    }
    return completeOpenApi(response as Document, bodies);
  });
