import { t } from "elysia";
import { requestScope } from "./auth/scope.ts";

/** Documented on every route that needs a caller; checked by authenticate() for a 401, not a 400. */
export const IdentityHeaders = t.Object({
  authorization: t.Optional(t.String({ description: "`Bearer <JWT>` (AUTH_MODE=jwt): `sub` is the caller, `microdaos` their microDAOs." })),
  "x-user-id": t.Optional(t.String({ description: "The caller, `user:…` or `agent:…`; accepted only in AUTH_MODE=dev." })),
  "idempotency-key": t.Optional(
    t.String({ description: "On POST: a retry with the same key and body returns the first answer and creates nothing (kept 24 h)." }),
  ),
});

/**
 * The caller of this request (dev: X-User-Id; jwt: the verified Bearer token's sub), resolved
 * once per request; 401 UNAUTHENTICATED otherwise. The token's microDAOs become visible to the
 * access checks of this request (src/access/channel-access.ts).
 */
export async function authenticate(request: Request): Promise<string> {
  const scope = requestScope();
  if (!scope?.auth) throw new Error("authenticate() called outside a request scope");
  const identity = await scope.auth.identify(request);
  scope.identity = identity;
  return identity.caller;
}

/** The caller when the request names one; null when it names none or an invalid one. */
export async function optionalCaller(request: Request): Promise<string | null> {
  return authenticate(request).catch(() => null);
}
