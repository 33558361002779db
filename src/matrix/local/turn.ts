import { createHmac } from "node:crypto";
import type { TurnServer } from "../port.ts";

export interface TurnConfig {
  uris: string[];
  sharedSecret: string;
  ttlS: number;
}

/**
 * TURN REST credentials as Synapse computes them (synapse/rest/client/voip.py, the TURN REST
 * API of coturn's `use-auth-secret`): username `<expiry unix seconds>:<user id>`, password the
 * base64 HMAC-SHA1 of the username keyed with the shared secret.
 */
export function turnCredentials(config: TurnConfig, userId: string, nowMs: number): TurnServer {
  const expiry = Math.floor(nowMs / 1000) + config.ttlS;
  const username = `${expiry}:${userId}`;
  const password = createHmac("sha1", config.sharedSecret).update(username).digest("base64");
  return { username, password, uris: [...config.uris], ttl: config.ttlS };
}
