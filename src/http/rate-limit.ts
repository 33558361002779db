import { Elysia } from "elysia";
import type { BlockList } from "node:net";
import { AppError } from "../errors.ts";
import type { Config } from "../config.ts";
import type { Authenticator } from "./auth/authenticator.ts";
import { isFromKnownService } from "./auth/plugin.ts";
import { clientAddress, parseTrustedProxies } from "./client-address.ts";
import type { BucketRule, Take, TokenBuckets } from "./rate-buckets.ts";

export interface RateLimitConfig {
  userWrite: BucketRule;
  channelWrite: BucketRule;
  userRead: BucketRule;
  /** Requests with no verified caller, per client address. */
  address: BucketRule;
  trustedProxies: BlockList | null;
}

/** Who a request is, as far as the limiter may rely on it. */
export interface Requester {
  /** The verified caller (dev: a valid X-User-Id; jwt: the token's sub); null when there is none. */
  caller: string | null;
  /** An /internal request whose X-Internal-Service-Token internalOnly verified: a known service. */
  service: boolean;
  /** The client's address (see client-address.ts); null when the socket has none. */
  address: string | null;
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const LIMITED_PREFIX = /^\/(api|internal)\//;
const CHANNEL_IN_PATH = /\/channels\/([0-9a-fA-F-]{36})(?:\/|$)/;
const on = (rule: BucketRule) => rule.perMinute > 0 && rule.burst > 0;

/**
 * Which buckets a request draws from: none for health, docs, the Matrix API and WebSocket
 * upgrades. A verified caller (or a known service) draws from their own and the channel's
 * buckets; anyone else only from their address's, so that nobody without credentials can spend
 * a user's or a channel's budget.
 */
export function bucketsFor(config: RateLimitConfig, method: string, path: string, who: Requester): Take[] {
  if (!LIMITED_PREFIX.test(path)) return [];
  const { caller } = who;
  if (!caller && !who.service) {
    return on(config.address) ? [{ key: `address:${who.address ?? "unknown"}`, rule: config.address }] : [];
  }
  const takes: Take[] = [];
  if (WRITE_METHODS.has(method)) {
    if (caller && on(config.userWrite)) takes.push({ key: `user-write:${caller}`, rule: config.userWrite });
    const channel = CHANNEL_IN_PATH.exec(path)?.[1]?.toLowerCase();
    if (channel && on(config.channelWrite)) takes.push({ key: `channel-write:${channel}`, rule: config.channelWrite });
  } else if (caller && on(config.userRead)) {
    takes.push({ key: `user-read:${caller}`, rule: config.userRead });
  }
  return takes;
}

/**
 * Token buckets per verified caller, per channel and per client address, decided in memory
 * (rate-buckets.ts; rate-reconciler.ts shares them with the other instances through
 * PostgreSQL), so a request costs no database round trip. The caller is authenticated here
 * first (the answer is cached for the route, which still answers 401 itself). The tightest
 * bucket of the request sets the X-RateLimit-* headers; an empty one answers 429 with
 * Retry-After.
 */
export const rateLimit = (buckets: TokenBuckets, config: RateLimitConfig, auth: Authenticator) =>
  new Elysia({ name: "rate-limit" }).onRequest(async ({ request, server, set }) => {
    if (!anyBucketOn(config)) return;
    const path = new URL(request.url).pathname;
    if (!LIMITED_PREFIX.test(path)) return;
    const caller = await auth.identify(request).then((identity) => identity.caller, () => null);
    const service = isFromKnownService(request);
    // Only a request with no verified caller is limited by its address: only then is it worked out.
    const address =
      caller || service ? null : clientAddress(server?.requestIP(request)?.address ?? null, request.headers.get("x-forwarded-for"), config.trustedProxies);
    const who: Requester = { caller, service, address };
    const takes = bucketsFor(config, request.method, path, who);
    if (takes.length === 0) return;
    const states = buckets.take(takes);
    const denied = states.filter((s) => !s.allowed);
    const shown = denied[0] ?? states.reduce((a, b) => (b.tokens / b.rule.burst < a.tokens / a.rule.burst ? b : a));
    const perSecond = shown.rule.perMinute / 60;
    const headers = {
      "X-RateLimit-Limit": String(shown.rule.burst),
      "X-RateLimit-Remaining": String(Math.max(0, Math.floor(shown.tokens))),
      // Seconds until the bucket is full again.
      "X-RateLimit-Reset": String(Math.ceil((shown.rule.burst - shown.tokens) / perSecond)),
    };
    if (denied.length > 0) {
      const retryAfter = Math.max(1, ...denied.map((s) => Math.ceil((1 - s.tokens) / (s.rule.perMinute / 60))));
      throw new AppError(429, "RATE_LIMITED", `too many requests; retry in ${retryAfter} s`, { ...headers, "Retry-After": String(retryAfter) });
    }
    Object.assign(set.headers, headers);
  });

export function anyBucketOn(c: RateLimitConfig): boolean {
  return [c.userWrite, c.channelWrite, c.userRead, c.address].some(on);
}

export function rateLimitConfig(c: Config): RateLimitConfig {
  return {
    userWrite: { perMinute: c.RATE_LIMIT_USER_PER_MIN, burst: c.RATE_LIMIT_USER_BURST },
    channelWrite: { perMinute: c.RATE_LIMIT_CHANNEL_PER_MIN, burst: c.RATE_LIMIT_CHANNEL_BURST },
    userRead: { perMinute: c.RATE_LIMIT_READ_PER_MIN, burst: c.RATE_LIMIT_READ_BURST },
    address: { perMinute: c.RATE_LIMIT_ADDRESS_PER_MIN, burst: c.RATE_LIMIT_ADDRESS_BURST },
    trustedProxies: parseTrustedProxies(c.TRUSTED_PROXIES),
  };
}
