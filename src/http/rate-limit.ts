import { Elysia } from "elysia";
import type { Sql } from "../store/db.ts";
import type { Logger } from "../log.ts";
import { AppError } from "../errors.ts";
import { DAARION_ID_PATTERN } from "../matrix/mapping.ts";
import type { Config } from "../config.ts";

export interface BucketRule {
  /** Tokens added per minute; 0 turns the bucket off. */
  perMinute: number;
  /** Capacity: how many requests may come at once after a quiet spell. */
  burst: number;
}

export interface RateLimitConfig {
  userWrite: BucketRule;
  channelWrite: BucketRule;
  userRead: BucketRule;
}

interface Take {
  key: string;
  rule: BucketRule;
}

interface BucketState {
  rule: BucketRule;
  tokens: number;
  allowed: boolean;
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const LIMITED_PREFIX = /^\/(api|internal)\//;
const CHANNEL_IN_PATH = /\/channels\/([0-9a-fA-F-]{36})(?:\/|$)/;
const daarionId = new RegExp(DAARION_ID_PATTERN);

/**
 * Takes one token from each bucket in a single statement, so instances sharing the database
 * share the limits. The refill is computed by the database clock, never the caller's.
 */
export async function takeTokens(sql: Sql, takes: Take[]): Promise<BucketState[]> {
  const keys = takes.map((t) => t.key);
  const rates = takes.map((t) => t.rule.perMinute / 60);
  const bursts = takes.map((t) => t.rule.burst);
  // Refilled level: capped at burst, never below what is left (a clock step back adds nothing).
  const rows = await sql`
    insert into rate_limit_buckets as b (key, tokens, rate, burst, allowed, updated_at)
    select r.k, r.burst - 1, r.rate, r.burst, true, clock_timestamp()
      from unnest(${keys}::text[], ${rates}::float8[], ${bursts}::float8[]) as r(k, rate, burst)
    on conflict (key) do update set
      tokens = case
        when least(excluded.burst, b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * excluded.rate) >= 1
        then least(excluded.burst, b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * excluded.rate) - 1
        else least(excluded.burst, b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * excluded.rate) end,
      allowed = least(excluded.burst, b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * excluded.rate) >= 1,
      rate = excluded.rate,
      burst = excluded.burst,
      updated_at = clock_timestamp()
    returning key, tokens, allowed`;
  const byKey = new Map(rows.map((r) => [r.key as string, r]));
  return takes.map((t) => {
    const row = byKey.get(t.key);
    return { rule: t.rule, tokens: Number(row?.tokens ?? t.rule.burst), allowed: row ? Boolean(row.allowed) : true };
  });
}

/** Which buckets a request draws from: none for health, docs, the Matrix API and WebSocket upgrades. */
export function bucketsFor(config: RateLimitConfig, method: string, path: string, caller: string | null): Take[] {
  if (!LIMITED_PREFIX.test(path)) return [];
  const takes: Take[] = [];
  const on = (rule: BucketRule) => rule.perMinute > 0 && rule.burst > 0;
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
 * Token buckets per caller and per channel, kept in PostgreSQL (one upsert per request).
 * The tightest bucket of the request sets the X-RateLimit-* headers; an empty one answers 429
 * with Retry-After. If the database cannot answer, the request goes through (logged): a
 * limiter must not turn a database hiccup into an outage of its own.
 */
export const rateLimit = (sql: Sql, config: RateLimitConfig, log: Logger) =>
  new Elysia({ name: "rate-limit" }).onRequest(async ({ request, set }) => {
    const path = new URL(request.url).pathname;
    const header = request.headers.get("x-user-id");
    const caller = header && header.length <= 70 && daarionId.test(header) ? header : null;
    const takes = bucketsFor(config, request.method, path, caller);
    if (takes.length === 0) return;
    if (Math.random() < 0.001) void pruneBuckets(sql).catch(() => {});
    let states: BucketState[];
    try {
      states = await takeTokens(sql, takes);
    } catch (err) {
      log.warn({ err: String(err) }, "rate limiter unavailable; request let through");
      return;
    }
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

/** Deletes buckets idle long enough to be full again (called now and then). */
export async function pruneBuckets(sql: Sql): Promise<void> {
  await sql`delete from rate_limit_buckets where updated_at < now() - interval '1 hour'`;
}

export function rateLimitConfig(c: Config): RateLimitConfig {
  return {
    userWrite: { perMinute: c.RATE_LIMIT_USER_PER_MIN, burst: c.RATE_LIMIT_USER_BURST },
    channelWrite: { perMinute: c.RATE_LIMIT_CHANNEL_PER_MIN, burst: c.RATE_LIMIT_CHANNEL_BURST },
    userRead: { perMinute: c.RATE_LIMIT_READ_PER_MIN, burst: c.RATE_LIMIT_READ_BURST },
  };
}
