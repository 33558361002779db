import { Elysia, t } from "elysia";
import { AppError, MatrixApiError } from "../errors.ts";
import { MailboxClosedError, MailboxFullError } from "../channel/mailbox.ts";
import type { Logger } from "../log.ts";
import { currentRequestId } from "../request-context.ts";

export const ErrorBody = t.Object({
  error: t.String({ description: "A stable, machine-readable code", examples: ["NOT_FOUND"] }),
  message: t.String(),
  request_id: t.String({ description: "The request's id, as in its X-Request-Id response header: quote it when reporting a problem" }),
});


/**
 * Every refusal is `{error, message, request_id}` with a 4xx (or 502/503 for upstream trouble). Nothing
 * internal (stack traces, SQL, tokens, message text) reaches a response; unexpected errors
 * are logged by name and message only.
 */
export const errorHandler = (log: Logger) =>
  new Elysia({ name: "errors" }).onError({ as: "global" }, ({ code, error, request, set }) => {
    // Setting status on the context (not returning a Response) keeps it visible to the request log.
    const json = (status: number, errorCode: string, message: string, headers: Record<string, string> = {}) => {
      set.status = status;
      Object.assign(set.headers, headers);
      return { error: errorCode, message, request_id: currentRequestId() };
    };
    // A route's own body parser may refuse with an AppError (a too-large upload); Elysia wraps it.
    const refusal = error instanceof AppError ? error : code === "PARSE" && (error as Error).cause instanceof AppError ? ((error as Error).cause as AppError) : null;
    if (refusal) return json(refusal.status, refusal.code, refusal.message, refusal.headers);
    if (error instanceof MatrixApiError) {
      set.status = error.status;
      // Matrix's error shape allows extra fields; the id helps match a homeserver's retry to our logs.
      return { errcode: error.errcode, error: error.message, request_id: currentRequestId() };
    }
    if (error instanceof MailboxFullError) {
      return json(503, "CHANNEL_BUSY", "the channel has too much queued work; retry shortly", {
        "Retry-After": String(error.retryAfterSeconds),
      });
    }
    if (error instanceof MailboxClosedError) {
      return json(503, "CHANNEL_BUSY", "the channel is restarting; retry shortly", { "Retry-After": "1" });
    }
    switch (code) {
      case "VALIDATION":
        return json(400, "VALIDATION_FAILED", describeValidation(error));
      case "PARSE":
        return json(400, "INVALID_BODY", "the request body is not valid JSON (or not the declared content type)");
      case "NOT_FOUND":
        return json(404, "NOT_FOUND", "no such route");
      case "INVALID_COOKIE_SIGNATURE":
      case "INVALID_FILE_TYPE":
        return json(400, "INVALID_REQUEST", "the request is malformed");
    }
    const status = (error as { status?: unknown }).status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return json(status, "INVALID_REQUEST", "the request is malformed");
    }
    log.error({ err: { name: (error as Error).name, message: (error as Error).message }, method: request.method, path: new URL(request.url).pathname }, "unhandled error");
    return json(500, "INTERNAL", "internal error");
  });

function describeValidation(error: unknown): string {
  const v = error as { type?: string; all?: Array<{ path?: string; message?: string; summary?: string }> };
  const first = v.all?.[0];
  const where = v.type ?? "request";
  if (!first) return `invalid ${where}`;
  const field = first.path ? first.path.replace(/^\//, "").replace(/\//g, ".") : "";
  return `invalid ${where}${field ? ` field '${field}'` : ""}: ${first.summary ?? first.message ?? "does not match the schema"}`;
}
