import { Elysia } from "elysia";

type Operation = {
  parameters?: Array<{ in: string; name: string }>;
  requestBody?: { content?: Record<string, unknown> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema: unknown }> }>;
};
type Document = { paths?: Record<string, Record<string, Operation>>; components?: unknown };

const errorSchema = {
  type: "object",
  required: ["error", "message"],
  properties: { error: { type: "string" }, message: { type: "string" } },
};
const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: errorSchema } } });

/**
 * Makes /docs/json say what the server really answers, so clients and the fuzzer
 * (scripts/fuzz.ts) can hold it to that: request bodies are JSON (multipart for uploads) and
 * responses JSON only (the swagger plugin lists every parser's type), and the refusals that come from shared middleware rather than the
 * route itself are listed on every route they can reach: 400 for a request that fails its
 * schema, 401 without an identity, 413 past the body cap, and the Idempotency-Key answers
 * 409/422 on POST.
 */
export function completeOpenApi(doc: Document): Document {
  for (const [path, ops] of Object.entries(doc.paths ?? {})) {
    if (path.startsWith("/_matrix/")) continue;
    for (const [method, op] of Object.entries(ops)) {
      const responses = (op.responses ??= {});
      for (const response of Object.values(responses)) {
        const json = response.content?.["application/json"];
        if (json) response.content = { "application/json": json };
      }
      // Bodies are JSON, and multipart only for uploads (src/http/body-limit.ts refuses it elsewhere).
      const bodyType = path.endsWith("/files") ? "multipart/form-data" : "application/json";
      const media = op.requestBody?.content?.[bodyType];
      if (op.requestBody?.content && media) op.requestBody.content = { [bodyType]: media };
      const params = op.parameters ?? [];
      const takesInput = op.requestBody !== undefined || params.some((p) => p.in === "query" || p.in === "path");
      if (takesInput) responses["400"] ??= errorResponse("The request does not match its schema (VALIDATION_FAILED, INVALID_BODY)");
      // The body cap (src/http/body-limit.ts) answers before the route: any route with a body may get it.
      if (op.requestBody !== undefined) responses["413"] ??= errorResponse("The body is larger than MAX_BODY_BYTES (PAYLOAD_TOO_LARGE)");
      if (params.some((p) => p.in === "header" && p.name === "x-user-id")) responses["401"] ??= errorResponse("No or malformed identity (UNAUTHENTICATED)");
      if (method === "post") {
        responses["400"] ??= errorResponse("The request does not match its schema, or a malformed Idempotency-Key");
        responses["409"] ??= errorResponse("A request with this Idempotency-Key is still running (IDEMPOTENCY_IN_PROGRESS)");
        responses["422"] ??= errorResponse("This Idempotency-Key was used with another body (IDEMPOTENCY_KEY_REUSED)");
      }
    }
  }
  return doc;
}

/** Applies completeOpenApi to the swagger plugin's /docs/json answer. */
export const openApiCompletion = (specPath: string) =>
  new Elysia({ name: "openapi-completion" }).onAfterHandle({ as: "global" }, ({ request, response }) => {
    if (new URL(request.url).pathname !== specPath) return;
    if (response instanceof Response || typeof response !== "object" || response === null) return;
    return completeOpenApi(response as Document);
  });
