import type { RealtimeDeps } from "./deps.ts";
import type { Identity } from "../http/auth/authenticator.ts";
import { withIdentity } from "../http/auth/scope.ts";
import { readableChannel } from "../access/channel-access.ts";
import { AppError } from "../errors.ts";

const identities = new WeakMap<Request, Identity>();

/**
 * The upgrade's check: who is calling (dev: X-User-Id or ?user_id=; jwt: the token in
 * `Sec-WebSocket-Protocol: bearer, <token>` or ?access_token=) and may they read the channel.
 * Returns the subprotocol to echo back, which browsers require when they offered one.
 */
export async function authorizeSocket(deps: RealtimeDeps, request: Request, channelId: string): Promise<string | null> {
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

/**
 * Called once the socket is registered: a kick committed between the upgrade's check and the
 * registration found no socket to close, so the right is checked once more.
 */
export async function recheckSocket(deps: RealtimeDeps, request: Request, channelId: string): Promise<void> {
  const identity = socketIdentity(request);
  try {
    await withIdentity(identity, () => readableChannel(deps.sql, identity.caller, channelId));
  } catch (err) {
    if (err instanceof AppError && err.status === 404) deps.sockets.revoke(channelId, identity.caller, "no longer readable");
    else deps.log.warn({ err: String(err), channel_id: channelId }, "could not re-check a socket's read right");
  }
}
