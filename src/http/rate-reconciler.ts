import type { Sql } from "../store/db.ts";
import type { Logger } from "../log.ts";
import { spendAndReadBuckets } from "../store/rate-limits.ts";
import type { TokenBuckets } from "./rate-buckets.ts";

/**
 * Read back a second more than the time since the last answered round: another instance's
 * write that committed just after that round's snapshot is still read by the next one.
 */
const LOOKBACK_MARGIN_S = 1;

/**
 * Keeps this instance's in-memory buckets (rate-buckets.ts) in line with every other
 * instance's through PostgreSQL: every `everyMs`, one statement adds what this instance took
 * since the last round and reads back the level of each bucket it holds and of each bucket
 * another instance spent from meanwhile. A round the database does not answer changes no
 * decision: requests are still decided from memory, what was taken goes with the next round,
 * and one warning is logged until a round is answered again.
 */
export class RateReconciler {
  private timer: ReturnType<typeof setInterval> | null = null;
  private running: Promise<boolean> | null = null;
  private begun = 0;
  /** When the last answered round began (monotonic ms); null: never, so the first reads every bucket. */
  private lastAnsweredAt: number | null = null;
  private failing = false;
  private waiters: { after: number; resolve: (answered: boolean) => void }[] = [];

  constructor(
    private readonly sql: Sql,
    readonly buckets: TokenBuckets,
    private readonly log: Logger,
    private readonly everyMs: number,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => {
      if (!this.running) void this.reconcile();
    }, this.everyMs);
  }

  /** A round that begins after this call (once the one in flight, if any, is over); true if PostgreSQL answered it. Never throws. */
  async reconcile(): Promise<boolean> {
    while (this.running) await this.running;
    this.running = this.round().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Resolves when a round that begins after this call has ended (true if PostgreSQL answered it): tests await this, never a sleep. */
  nextRound(): Promise<boolean> {
    return new Promise((resolve) => this.waiters.push({ after: this.begun, resolve }));
  }

  /** Stops the timer and sends what was taken since the last round, so the others count it (nothing to do if it never started). */
  async stop(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    await this.reconcile();
  }

  private async round(): Promise<boolean> {
    const id = ++this.begun;
    const begunAt = performance.now();
    const spends = this.buckets.startRound();
    const lookbackSeconds = this.lastAnsweredAt === null ? null : (begunAt - this.lastAnsweredAt) / 1000 + LOOKBACK_MARGIN_S;
    let answered = false;
    try {
      const rows = await spendAndReadBuckets(
        this.sql,
        {
          keys: spends.map((s) => s.key),
          taken: spends.map((s) => s.taken),
          rates: spends.map((s) => s.rule.perMinute / 60),
          bursts: spends.map((s) => s.rule.burst),
        },
        lookbackSeconds,
      );
      this.buckets.finishRound(rows.map((r) => ({ key: r.key, rule: { perMinute: Number(r.rate) * 60, burst: Number(r.burst) }, tokens: Number(r.tokens) })));
      this.lastAnsweredAt = begunAt;
      if (this.failing) this.log.info("rate limits reconciled with the database again");
      this.failing = false;
      answered = true;
    } catch (err) {
      this.buckets.failRound();
      if (!this.failing) this.log.warn({ err: String(err) }, "could not reconcile rate limits with the database; deciding from memory and retrying every round");
      this.failing = true;
    }
    this.waiters = this.waiters.filter((w) => {
      if (w.after >= id) return true;
      w.resolve(answered);
      return false;
    });
    return answered;
  }
}
