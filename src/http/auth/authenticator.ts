import { authMode, type Config } from "../../config.ts";
import { AppError } from "../../errors.ts";
import { DAARION_ID_PATTERN } from "../../domain/ids.ts";
import { TokenRejected, tokenVerifier, type Identity } from "./tokens.ts";

export type { Identity };

const daarionId = new RegExp(DAARION_ID_PATTERN);

/** The WebSocket subprotocol that announces a token: `Sec-WebSocket-Protocol: bearer, <token>`. */
export const BEARER_SUBPROTOCOL = "bearer";

export interface Authenticator {
  readonly mode: "dev" | "jwt";
  /** The caller of an HTTP request (cached per request); 401 UNAUTHENTICATED when there is none. */
  identify(request: Request): Promise<Identity>;
  /** The caller of a WebSocket upgrade, and the subprotocol to echo back (browsers require it). */
  identifySocket(request: Request): Promise<{ identity: Identity; protocol: string | null }>;
}

export function createAuthenticator(config: Config): Authenticator {
  const mode = authMode(config);
  const cache = new WeakMap<Request, Promise<Identity>>();
  const verify =
    mode === "jwt"
      ? tokenVerifier({
          secret: config.JWT_SECRET,
          jwksUrl: config.JWT_JWKS_URL,
          issuer: config.JWT_ISSUER!,
          audience: config.JWT_AUDIENCE!,
          clockSkewS: config.JWT_CLOCK_SKEW_S,
        })
      : null;

  const fromToken = async (token: string): Promise<Identity> => {
    try {
      return await verify!(token);
    } catch (err) {
      if (err instanceof TokenRejected) throw unauthenticated(err.message, "invalid_token");
      throw err;
    }
  };

  const identifyRequest = async (request: Request, socketToken: string | null): Promise<Identity> => {
    if (mode === "dev") {
      const url = socketToken === null ? null : new URL(request.url);
      return devIdentity(request.headers.get("x-user-id") ?? url?.searchParams.get("user_id") ?? null);
    }
    const token = bearerToken(request.headers.get("authorization")) ?? socketToken;
    if (token) return fromToken(token);
    if (request.headers.has("x-user-id")) {
      throw unauthenticated("X-User-Id is not accepted when AUTH_MODE=jwt; send Authorization: Bearer <token>");
    }
    throw unauthenticated("a Bearer token is required (Authorization: Bearer <token>)");
  };

  return {
    mode,
    identify(request) {
      let found = cache.get(request);
      if (!found) {
        found = identifyRequest(request, null);
        cache.set(request, found);
      }
      return found;
    },
    async identifySocket(request) {
      const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
      const i = offered.indexOf(BEARER_SUBPROTOCOL);
      const fromProtocol = i >= 0 ? offered[i + 1] ?? null : null;
      const fromQuery = new URL(request.url).searchParams.get("access_token");
      const identity = await identifyRequest(request, mode === "jwt" ? fromProtocol ?? fromQuery ?? "" : "");
      return { identity, protocol: i >= 0 ? BEARER_SUBPROTOCOL : null };
    },
  };

  function unauthenticated(message: string, error?: string): AppError {
    return new AppError(401, "UNAUTHENTICATED", message, mode === "jwt" ? { "WWW-Authenticate": bearerChallenge(error) } : {});
  }
}

function bearerChallenge(error?: string): string {
  return error ? `Bearer realm="daarion-messaging", error="${error}"` : `Bearer realm="daarion-messaging"`;
}

function bearerToken(header: string | null): string | null {
  const match = header?.match(/^Bearer\s+(\S+)$/i);
  return match ? match[1]! : null;
}

function devIdentity(value: string | null): Identity {
  if (!value) throw new AppError(401, "UNAUTHENTICATED", "X-User-Id header is required (user:… or agent:…)");
  if (!daarionId.test(value)) throw new AppError(401, "UNAUTHENTICATED", "X-User-Id must be user:<id> or agent:<id>");
  return { caller: value, microdaos: [] };
}
