import type { Logger } from "../log.ts";
import type { Sql } from "../store/db.ts";
import type { MatrixBackend } from "../matrix/port.ts";
import { INBOX_PAGE, type InboxDispatcher } from "./dispatcher.ts";
import { loadSyncPosition, storeSyncBatch } from "../store/inbox.ts";
import type { KnownEchoes } from "../channel/known-echoes.ts";

const MAX_BACKOFF_MS = 30_000;
/** While only known echoes come, the sync position is written at most this often (a restart asks again for what came since). */
const POSITION_EVERY_MS = 1000;

/**
 * Long-polls the homeserver. Each batch is written to the inbox together with its
 * next_batch in one transaction, then handed to the channel actors; the next long-poll
 * starts only once the batch is indexed, so the inbox stays small.
 */
export class SyncPoller {
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    private readonly deps: {
      sql: Sql;
      matrix: MatrixBackend;
      dispatcher: InboxDispatcher;
      log: Logger;
      timeoutMs: number;
      /** Echoes of this process's own sends that need no inbox row (channel/known-echoes.ts). */
      knownEchoes?: KnownEchoes;
      /** Called once, when the first round (sync, store, index) completed: the service caught up. */
      onCaughtUp?: () => void;
    },
    private readonly stateKey: string,
  ) {}

  start(): void {
    if (!this.loop) this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run() {
    const { log } = this.deps;
    const signal = this.abort.signal;
    let failures = 0;
    let since: string | null = null;
    let loaded = false;
    let caughtUp = false;
    // The position in memory may be ahead of the stored one while only known echoes came.
    let positionOwed = false;
    let positionWrittenAt = 0;
    log.info({ component: "sync" }, "sync poller started");
    while (!signal.aborted) {
      try {
        if (!loaded) {
          since = await loadSyncPosition(this.deps.sql, this.stateKey);
          loaded = true;
          // Whatever a crash left in the inbox goes first.
          await this.deps.dispatcher.drain();
        }
        // The first round only catches up (no long-poll): a restart is ready as soon as it has
        // what arrived while it was down, not after SYNC_TIMEOUT_MS of a quiet homeserver.
        const batch = await this.deps.matrix.sync(since, caughtUp ? this.deps.timeoutMs : 0, signal);
        if (signal.aborted) break;
        const { knownEchoes } = this.deps;
        const events = knownEchoes ? batch.events.filter((event) => !knownEchoes.take(event.event_id)) : batch.events;
        if (events.length === 0 && batch.events.length > 0) {
          // Only our own echoes, already indexed: nothing for the inbox or the actors.
          since = batch.nextBatch;
          positionOwed = true;
          if (performance.now() - positionWrittenAt >= POSITION_EVERY_MS) {
            await storeSyncBatch(this.deps.sql, this.stateKey, since, [], this.deps.dispatcher.eventTypes, INBOX_PAGE);
            positionWrittenAt = performance.now();
            positionOwed = false;
          }
        } else {
          let firstPage = null;
          if (batch.nextBatch !== since || events.length > 0 || positionOwed) {
            firstPage = await storeSyncBatch(this.deps.sql, this.stateKey, batch.nextBatch, events, this.deps.dispatcher.eventTypes, INBOX_PAGE);
            since = batch.nextBatch;
            positionWrittenAt = performance.now();
            positionOwed = false;
          }
          await this.deps.dispatcher.drain(firstPage);
        }
        // After the timeline is indexed, so a receipt finds the message it names.
        if (batch.ephemeral?.length) await this.deps.dispatcher.deliverEphemeral(batch.ephemeral);
        if (failures > 0) log.info({ component: "sync" }, "sync recovered");
        failures = 0;
        if (!caughtUp) {
          caughtUp = true;
          this.deps.onCaughtUp?.();
        }
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 7));
        log.warn({ component: "sync", err: err instanceof Error ? err.message : String(err), retry_in_ms: delay }, "sync failed");
        await abortableDelay(delay, signal);
      }
    }
    if (positionOwed && since !== null) {
      await storeSyncBatch(this.deps.sql, this.stateKey, since, [], this.deps.dispatcher.eventTypes, INBOX_PAGE).catch(() => {});
    }
    log.info({ component: "sync" }, "sync poller stopped");
  }
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
