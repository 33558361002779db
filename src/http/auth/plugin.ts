import { Elysia } from "elysia";
import { AppError } from "../../errors.ts";
import type { Authenticator } from "./authenticator.ts";
import { enterRequestScope } from "./scope.ts";
import { sameSecret } from "./secrets.ts";

/** Opens each request's auth scope; controllers then call authenticate(request) (src/http/identity.ts). */
export const authentication = (auth: Authenticator) =>
  new Elysia({ name: "authentication" }).onRequest(() => {
    enterRequestScope(auth);
  });

export const INTERNAL_TOKEN_HEADER = "x-internal-service-token";

const fromKnownService = new WeakSet<Request>();

/** Whether internalOnly (which runs first) verified this request's X-Internal-Service-Token. */
export const isFromKnownService = (request: Request): boolean => fromKnownService.has(request);

/**
 * /internal/* is for other DAARION services: they present INTERNAL_SERVICE_TOKEN. Without a
 * configured token (dev mode only; production refuses to start) the endpoints stay open.
 */
export const internalOnly = (token: string | undefined) =>
  new Elysia({ name: "internal-only" }).onRequest(({ request }) => {
    if (!token) return;
    const path = new URL(request.url).pathname;
    if (path !== "/internal" && !path.startsWith("/internal/")) return;
    const given = request.headers.get(INTERNAL_TOKEN_HEADER);
    if (!given) throw new AppError(401, "UNAUTHENTICATED", "X-Internal-Service-Token is required for /internal endpoints");
    if (!sameSecret(given, token)) throw new AppError(403, "FORBIDDEN", "X-Internal-Service-Token is not valid");
    fromKnownService.add(request);
  });
