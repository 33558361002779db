import type { Sql } from "./db.ts";

export interface TakenBucket {
  bucket_key: string;
  tokens_left: unknown;
  admitted: unknown;
}

/**
 * One token from every named bucket, or from none (rate_limit_take in migrations/013): one
 * statement, refilled by the database clock.
 */
export async function takeBucketTokens(sql: Sql, keys: string[], rates: number[], bursts: number[]): Promise<TakenBucket[]> {
  return sql<TakenBucket[]>`select bucket_key, tokens_left, admitted from rate_limit_take(${keys}::text[], ${rates}::float8[], ${bursts}::float8[])`;
}

/** Deletes the buckets that have refilled to their burst: a full bucket is the same as none. */
export async function deleteFullBuckets(sql: Sql): Promise<void> {
  await sql`delete from rate_limit_buckets where rate_limit_level(tokens, updated_at, rate, burst) >= burst`;
}
