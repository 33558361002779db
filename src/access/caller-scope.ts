import { AsyncLocalStorage } from "node:async_hooks";

/** What the access checks know of the caller: the microDAOs their token lists. */
export interface CallerFacts {
  readonly microdaos: readonly string[];
}

/**
 * The caller of the current request or WebSocket frame, once resolved. The HTTP layer fills it
 * (src/http/auth/scope.ts); access checks deep in the services read the caller's microDAO
 * memberships from here, so the token's claims travel with the request instead of through every
 * service signature.
 */
export const callerScope = new AsyncLocalStorage<{ identity: CallerFacts | null }>();

/** The microDAOs the current caller's token lists (none in dev mode). */
export function callerMicrodaos(): readonly string[] {
  return callerScope.getStore()?.identity?.microdaos ?? [];
}
