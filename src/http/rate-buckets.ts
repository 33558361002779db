import type { Sql } from "../store/db.ts";
import type { Logger } from "../log.ts";
import { deleteFullBuckets, takeBucketTokens } from "../store/rate-limits.ts";

export interface BucketRule {
  /** Tokens added per minute; 0 turns the bucket off. */
  perMinute: number;
  /** Capacity: how many requests may come at once after a quiet spell. */
  burst: number;
}

export interface Take {
  key: string;
  rule: BucketRule;
}

export interface BucketState {
  rule: BucketRule;
  /** Tokens left after this request (taken from only if the request was admitted). */
  tokens: number;
  /** Whether this bucket had a token for the request; the request is admitted only if all did. */
  allowed: boolean;
}

/** How often full (hence pointless) bucket rows are deleted. */
export const PRUNE_INTERVAL_MS = 60_000;

/**
 * Takes one token from every bucket of a request, or from none (rate_limit_take in
 * migrations/013): one statement, so instances sharing the database share the limits, and
 * refills use the database clock, never the caller's.
 */
export async function takeTokens(sql: Sql, takes: Take[]): Promise<BucketState[]> {
  const keys = takes.map((t) => t.key);
  const rates = takes.map((t) => t.rule.perMinute / 60);
  const bursts = takes.map((t) => t.rule.burst);
  const rows = await takeBucketTokens(sql, keys, rates, bursts);
  const byKey = new Map(rows.map((r) => [r.bucket_key, r]));
  return takes.map((t) => {
    const row = byKey.get(t.key);
    if (!row) return { rule: t.rule, tokens: t.rule.burst, allowed: true };
    const tokens = Number(row.tokens_left);
    // Refused: the buckets at less than one token are the ones that said no.
    return { rule: t.rule, tokens, allowed: Boolean(row.admitted) || tokens >= 1 };
  });
}

/**
 * Deletes every bucket that has refilled to its burst: a full bucket and no row mean the same,
 * so this changes no decision, and the table holds only buckets spent from within their refill
 * time (burst / rate) plus one prune interval, whatever identities or addresses callers make up.
 */
export async function pruneBuckets(sql: Sql): Promise<void> {
  await deleteFullBuckets(sql);
}

/** Prunes on a timer owned by the app's lifecycle; stop() waits for a prune in progress. */
export function startBucketPruning(sql: Sql, log: Logger, everyMs = PRUNE_INTERVAL_MS): { stop(): Promise<void> } {
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    running ??= pruneBuckets(sql)
      .catch((err) => log.warn({ err: String(err) }, "could not prune rate-limit buckets; retrying on the next tick"))
      .finally(() => {
        running = null;
      });
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
