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

/** What this instance took from one bucket since it last told PostgreSQL (see rate-reconciler.ts). */
export interface Spend {
  key: string;
  rule: BucketRule;
  taken: number;
}

/** A bucket's level in PostgreSQL, after every instance's spending that reached it. */
export interface SharedLevel {
  key: string;
  rule: BucketRule;
  tokens: number;
}

interface Bucket {
  rule: BucketRule;
  /** The level at `at` (may be below 0: debt that several instances ran up together). */
  tokens: number;
  at: number;
  /** Taken since the last reconciliation round began. */
  unsent: number;
  /** Taken before the round in flight began, and sent with it. */
  sending: number;
}

/**
 * This instance's copy of every token bucket it uses, in memory: a request costs no database
 * round trip. A reconciliation round (rate-reconciler.ts) sends what was taken since the last
 * one and brings each copy to the level PostgreSQL holds after every instance's spending. A
 * bucket that has refilled to its burst, with nothing left to send, is dropped: a full bucket
 * and none mean the same.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  /** `now` in milliseconds, monotonic; tests pass their own. */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** One token from every bucket of a request, or from none: a request refused by one bucket spends nothing of the others. */
  take(takes: Take[]): BucketState[] {
    const t = this.now();
    const buckets = takes.map(({ key, rule }) => this.refilled(key, rule, t));
    const admitted = buckets.every((b) => b.tokens >= 1);
    return buckets.map((b) => {
      const had = b.tokens >= 1;
      if (admitted) {
        b.tokens -= 1;
        b.unsent += 1;
      }
      return { rule: b.rule, tokens: b.tokens, allowed: had };
    });
  }

  /** How many buckets are held (each is one row of the next round). */
  get size(): number {
    return this.buckets.size;
  }

  /**
   * Begins a round: drops full buckets with nothing to send, and returns every other one with
   * what was taken from it since the last round (0 for a bucket only to be read back), by key.
   */
  startRound(): Spend[] {
    const t = this.now();
    const spends: Spend[] = [];
    for (const [key, bucket] of this.buckets) {
      this.refill(bucket, t);
      if (bucket.unsent === 0 && bucket.tokens >= bucket.rule.burst) {
        this.buckets.delete(key);
        continue;
      }
      bucket.sending = bucket.unsent;
      bucket.unsent = 0;
      spends.push({ key, rule: bucket.rule, taken: bucket.sending });
    }
    return spends.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * Ends a round with PostgreSQL's levels, which include what the round sent: each bucket is
   * that level less what was taken while the round was in flight. A level for a bucket not held
   * here (another instance spent from it) makes this instance hold it too.
   */
  finishRound(levels: SharedLevel[]): void {
    const t = this.now();
    for (const { key, rule, tokens } of levels) {
      const bucket = this.buckets.get(key);
      if (bucket) {
        bucket.tokens = Math.min(bucket.rule.burst, tokens - bucket.unsent);
        bucket.at = t;
        bucket.sending = 0;
      } else {
        this.buckets.set(key, { rule, tokens: Math.min(rule.burst, tokens), at: t, unsent: 0, sending: 0 });
      }
    }
  }

  /** A round that PostgreSQL did not answer: what it carried is sent with the next one. */
  failRound(): void {
    for (const bucket of this.buckets.values()) {
      bucket.unsent += bucket.sending;
      bucket.sending = 0;
    }
  }

  private refilled(key: string, rule: BucketRule, t: number): Bucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { rule, tokens: rule.burst, at: t, unsent: 0, sending: 0 };
      this.buckets.set(key, bucket);
    }
    // The configuration in force wins over a rule read back from PostgreSQL.
    bucket.rule = rule;
    this.refill(bucket, t);
    return bucket;
  }

  private refill(bucket: Bucket, t: number): void {
    const elapsed = Math.max(0, t - bucket.at);
    bucket.tokens = Math.min(bucket.rule.burst, bucket.tokens + (elapsed * bucket.rule.perMinute) / 60_000);
    bucket.at = t;
  }
}
