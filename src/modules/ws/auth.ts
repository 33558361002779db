import type { ServiceDeps } from "../deps.ts";
import type { Identity } from "../../http/auth/authenticator.ts";
import { withIdentity } from "../../http/auth/scope.ts";
import { readableChannel } from "../access.ts";

const identities = new WeakMap<Request, Identity>();

/**
 * The upgrade's check: who is calling (dev: X-User-Id or ?user_id=; jwt: the token in
 * `Sec-WebSocket-Protocol: bearer, <token>` or ?access_token=) and may they read the channel.
 * Returns the subprotocol to echo back, which browsers require when they offered one.
 */
export async function authorizeSocket(deps: ServiceDeps, request: Request, channelId: string): Promise<string | null> {
  const { identity, protocol } = await deps.auth.identifySocket(request);
  await withIdentity(identity, () => readableChannel(deps.sql, identity.caller, channelId));
  identities.set(request, identity);
  return protocol;
}

/** The identity authorizeSocket established for this socket's upgrade request. */
export function socketIdentity(request: Request): Identity {
  const identity = identities.get(request);
  if (!identity) throw new Error("socket used before its upgrade was authorized");
  return identity;
}
