import type { Sql } from "../store/db.ts";
import type { Logger } from "../log.ts";
import { deleteFullBuckets } from "../store/rate-limits.ts";

/** How often full (hence pointless) bucket rows are deleted. */
export const PRUNE_INTERVAL_MS = 60_000;

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
