import { Elysia } from "elysia";
import { currentRequestId, runInRequest } from "../request-context.ts";

export const REQUEST_ID_HEADER = "x-request-id";

/** 1–128 printable ASCII characters, no spaces: anything else from a caller is replaced. */
const ACCEPTABLE = /^[\x21-\x7e]{1,128}$/;

export function requestIdFor(request: Request): string {
  const given = request.headers.get(REQUEST_ID_HEADER);
  return given !== null && ACCEPTABLE.test(given) ? given : Bun.randomUUIDv7();
}

/**
 * Every request gets an id, the caller's X-Request-Id when acceptable or a new UUID v7. The
 * whole request runs in its context (log lines carry it), and every answer, refusals and 404s
 * included, says it in X-Request-Id.
 */
export const requestId = () =>
  new Elysia({ name: "request-id" })
    .wrap((handle, request) => ((...args: unknown[]) => runInRequest(requestIdFor(request as Request), () => handle(...args))) as never)
    .onRequest(({ set }) => {
      set.headers[REQUEST_ID_HEADER] = currentRequestId()!;
    });
