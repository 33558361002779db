import type { Sql } from "./db.ts";

export interface BucketLevelRow {
  key: string;
  /** Tokens per second. */
  rate: unknown;
  burst: unknown;
  tokens: unknown;
}

/**
 * One instance's reconciliation round, in one statement (rows in key order, so two instances
 * never wait on each other in a cycle): adds what it took to each named bucket (rate_limit_level
 * refills by the database clock; the level may go below zero, never below minus one burst) and
 * answers the level of each, then the level of every other bucket spent from (by anyone) in the
 * last `lookbackSeconds` (null: every bucket) that is not full. A bucket with no row is full.
 */
export async function spendAndReadBuckets(
  sql: Sql,
  spends: { keys: string[]; taken: number[]; rates: number[]; bursts: number[] },
  lookbackSeconds: number | null,
): Promise<BucketLevelRow[]> {
  const { keys, taken, rates, bursts } = spends;
  return sql<BucketLevelRow[]>`
    with spent as (
      select * from unnest(${keys}::text[], ${taken}::float8[], ${rates}::float8[], ${bursts}::float8[]) as s(key, taken, rate, burst)
    ), written as (
      insert into rate_limit_buckets as b (key, tokens, rate, burst, updated_at)
      select key, greatest(-burst, burst - taken), rate, burst, clock_timestamp() from spent where taken > 0 order by key
      on conflict (key) do update set
        tokens = greatest(-excluded.burst, rate_limit_level(b.tokens, b.updated_at, excluded.rate, excluded.burst) - (select s.taken from spent s where s.key = excluded.key)),
        rate = excluded.rate,
        burst = excluded.burst,
        updated_at = clock_timestamp()
      returning b.key, b.tokens
    )
    select s.key, s.rate, s.burst, coalesce(w.tokens, rate_limit_level(b.tokens, b.updated_at, s.rate, s.burst), s.burst) as tokens
      from spent s left join written w on w.key = s.key left join rate_limit_buckets b on b.key = s.key
    union all
    select b.key, b.rate, b.burst, rate_limit_level(b.tokens, b.updated_at, b.rate, b.burst)
      from rate_limit_buckets b
     where (${lookbackSeconds}::float8 is null or b.updated_at > now() - make_interval(secs => ${lookbackSeconds}::float8))
       and b.key <> all(${keys}::text[])
       and rate_limit_level(b.tokens, b.updated_at, b.rate, b.burst) < b.burst`;
}

/** Deletes the buckets that have refilled to their burst: a full bucket is the same as none. */
export async function deleteFullBuckets(sql: Sql): Promise<void> {
  await sql`delete from rate_limit_buckets where rate_limit_level(tokens, updated_at, rate, burst) >= burst`;
}
