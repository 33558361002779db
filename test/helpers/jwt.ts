import { SignJWT } from "jose";

/** A JWT-mode environment (AUTH_MODE=jwt, HS256) for startTestServer. */
export const JWT_TEST = {
  secret: "test-secret-0123456789abcdefghijklmnopqrstuv",
  issuer: "https://id.daarion.test",
  audience: "daarion-messaging",
  internalToken: "internal-token-0123456789abcdefghijklmnop",
};

export const jwtTestEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
  AUTH_MODE: "jwt",
  JWT_SECRET: JWT_TEST.secret,
  JWT_ISSUER: JWT_TEST.issuer,
  JWT_AUDIENCE: JWT_TEST.audience,
  INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken,
  ...extra,
});

export interface TokenOptions {
  microdaos?: string[];
  issuer?: string;
  audience?: string;
  /** Seconds from now; negative for a token that has expired. */
  expiresIn?: number;
  notBefore?: number;
  secret?: string;
}

/** An HS256 token for `sub`, signed with the test secret unless told otherwise. */
export async function hsToken(sub: string, o: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(o.microdaos ? { microdaos: o.microdaos } : {})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuer(o.issuer ?? JWT_TEST.issuer)
    .setAudience(o.audience ?? JWT_TEST.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + (o.expiresIn ?? 300));
  if (o.notBefore !== undefined) jwt.setNotBefore(now + o.notBefore);
  return jwt.sign(new TextEncoder().encode(o.secret ?? JWT_TEST.secret));
}
