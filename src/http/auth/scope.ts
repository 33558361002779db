import type { AsyncLocalStorage } from "node:async_hooks";
import { callerScope } from "../../access/caller-scope.ts";
import type { Authenticator, Identity } from "./authenticator.ts";

/**
 * The request's authenticator and, once resolved, its verified identity, kept in the access
 * layer's caller scope (src/access/caller-scope.ts) so the access checks see the same identity.
 */
export interface RequestScope {
  auth: Authenticator | null;
  identity: Identity | null;
}

// The same store as the access layer's; only this module writes it, always with a RequestScope.
const storage = callerScope as AsyncLocalStorage<RequestScope>;

/** Opens a scope for the rest of the current request; must run synchronously at its start. */
export function enterRequestScope(auth: Authenticator): void {
  storage.enterWith({ auth, identity: null });
}

export function requestScope(): RequestScope | undefined {
  return storage.getStore();
}

/** Runs work for a caller outside an HTTP request (a WebSocket frame) with their identity. */
export function withIdentity<T>(identity: Identity, fn: () => T): T {
  return storage.run({ auth: null, identity }, fn);
}
