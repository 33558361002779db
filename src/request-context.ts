import { AsyncLocalStorage } from "node:async_hooks";

/**
 * What every log line written while serving one request carries: its request id. The HTTP
 * layer enters it for the whole request (src/http/request-id.ts); the logger's mixin reads it,
 * so services that log through the app logger need not pass it around.
 */
interface RequestContext {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runInRequest<T>(requestId: string, fn: () => T): T {
  return storage.run({ requestId }, fn);
}

/** The request id of the request being served here, if any. */
export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}


/** Runs fn with no request context: for long-lived work that a request happens to start. */
export function outsideRequest<T>(fn: () => T): T {
  return storage.exit(fn);
}
