import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { DAARION_ID_PATTERN, MICRODAO_ID_PATTERN } from "../../domain/ids.ts";

/** Who is calling: a DAARION id and the microDAOs their token lists. */
export interface Identity {
  caller: string;
  microdaos: string[];
  /** When the token stops being accepted (its exp plus the allowed clock skew), ms since the epoch; none in dev mode. */
  expiresAt?: number;
}

const daarionId = new RegExp(DAARION_ID_PATTERN);
const microdaoId = new RegExp(MICRODAO_ID_PATTERN);

/** The claim that lists the caller's microDAOs, e.g. `["microdao:daarion"]`. */
export const MICRODAOS_CLAIM = "microdaos";

export interface TokenSettings {
  secret?: string;
  jwksUrl?: string;
  issuer: string;
  audience: string;
  clockSkewS: number;
}

export class TokenRejected extends Error {}

/** Verifies a bearer token (signature, iss, aud, exp/nbf with skew) and maps its claims to a DAARION identity. */
export function tokenVerifier(s: TokenSettings): (token: string) => Promise<Identity> {
  // HS256 for a shared secret; asymmetric keys from the JWKS. Pinning the algorithms keeps a
  // token signed with the public key as an HMAC secret ("alg confusion") out.
  const [key, algorithms]: [Uint8Array | JWTVerifyGetKey, string[]] = s.secret
    ? [new TextEncoder().encode(s.secret), ["HS256"]]
    : [createRemoteJWKSet(new URL(s.jwksUrl!)), ["RS256", "ES256"]];
  return async (token) => {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, key as Uint8Array, {
        issuer: s.issuer,
        audience: s.audience,
        clockTolerance: s.clockSkewS,
        algorithms,
        requiredClaims: ["sub", "exp"],
      }));
    } catch (err) {
      throw new TokenRejected(describe(err));
    }
    const sub = payload.sub!;
    if (!daarionId.test(sub)) throw new TokenRejected("the token's sub is not user:<id> or agent:<id>");
    const listed = payload[MICRODAOS_CLAIM] ?? [];
    if (!Array.isArray(listed) || !listed.every((m) => typeof m === "string" && microdaoId.test(m))) {
      throw new TokenRejected(`the token's ${MICRODAOS_CLAIM} claim must be a list of microdao:<id>`);
    }
    return { caller: sub, microdaos: [...new Set(listed as string[])], expiresAt: (payload.exp! + s.clockSkewS) * 1000 };
  };
}

/** A short reason for the 401, never the token itself. */
function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "the token has expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `the token's ${err.claim} claim is not accepted`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (err instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not accepted";
  if (err instanceof errors.JWKSNoMatchingKey) return "no key of the issuer matches the token";
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return "the issuer's keys could not be fetched";
  return "the token is malformed";
}
