import type { Sql } from "../store/db.ts";
import type { Logger } from "../log.ts";
import { beatOwner, pruneGoneOwners, withdrawOwner } from "../store/idempotency.ts";

/** How often a running process says it is alive. */
export const HEARTBEAT_MS = 2000;
/** A claim's owner is gone once its heartbeat is older than this (three missed beats). */
export const OWNER_GONE_AFTER = "6 seconds";

/**
 * This process's identity for Idempotency-Key claims: a random token per start, with a
 * heartbeat row refreshed on a timer. A claim whose owner's heartbeat is fresh is being run by
 * a live process, however long it takes; one whose owner stopped beating (kill -9, a crash)
 * may be taken over. Its own claims the process tracks in memory, so one it abandoned (its
 * cleanup failed) is taken over by its next retry at once.
 */
export class IdempotencyOwner {
  readonly token = crypto.randomUUID();
  /** Scopes this process is running right now. */
  readonly running = new Set<string>();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beat().catch((err) => this.log.warn({ err: String(err) }, "idempotency heartbeat failed"));
    }, HEARTBEAT_MS);
  }

  /** Stops beating and withdraws the row, so claims this process still holds are free at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await withdrawOwner(this.sql, this.token).catch(() => {});
  }

  private async beat(): Promise<void> {
    await beatOwner(this.sql, this.token);
    if (Math.random() < 0.01) await pruneGoneOwners(this.sql);
  }
}
