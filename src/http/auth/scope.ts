import { AsyncLocalStorage } from "node:async_hooks";
import type { Authenticator, Identity } from "./authenticator.ts";

/**
 * The request's authenticator and, once resolved, its verified identity. Access checks deep in
 * the services read the caller's microDAO memberships from here, so the token's claims travel
 * with the request instead of through every service signature.
 */
export interface RequestScope {
  auth: Authenticator | null;
  identity: Identity | null;
}

const storage = new AsyncLocalStorage<RequestScope>();

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

/** The microDAOs the current caller's token lists (none in dev mode). */
export function callerMicrodaos(): readonly string[] {
  return storage.getStore()?.identity?.microdaos ?? [];
}
