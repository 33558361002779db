import type { Logger } from "../log.ts";
import type { Sql } from "../store/db.ts";
import type { ChannelRegistry } from "../actors/registry.ts";
import type { MatrixBackend } from "./port.ts";
import { findChannelByRoom } from "../store/channels.ts";

const MAX_BACKOFF_MS = 30_000;
/** Event types the channel actors index; anything else is not worth waking an actor for. */
const INDEXED_TYPES = new Set(["m.room.message"]);

/**
 * Long-polls the homeserver and hands every timeline event to its channel's actor, which
 * indexes it, pushes it on the WebSocket and publishes it, exactly as for a REST send.
 * next_batch is stored only after the batch's events are indexed, and indexing is
 * idempotent by event id, so a restart repeats at most one batch and never misses one.
 */
export class SyncPoller {
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private readonly channelOfRoom = new Map<string, string>();

  constructor(
    private readonly deps: { sql: Sql; matrix: MatrixBackend; registry: ChannelRegistry; log: Logger; timeoutMs: number },
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
    let since = await this.loadSince();
    let failures = 0;
    log.info({ component: "sync", since }, "sync poller started");
    while (!signal.aborted) {
      try {
        const batch = await this.deps.matrix.sync(since, this.deps.timeoutMs, signal);
        if (signal.aborted) break;
        for (const event of batch.events) {
          if (!INDEXED_TYPES.has(event.type)) continue;
          const channelId = await this.channelFor(event.room_id);
          if (channelId) await this.deps.registry.get(channelId).ingest(event);
        }
        if (batch.nextBatch !== since) await this.saveSince(batch.nextBatch);
        since = batch.nextBatch;
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 7));
        log.warn({ component: "sync", err: err instanceof Error ? err.message : String(err), retry_in_ms: delay }, "sync failed");
        await abortableDelay(delay, signal);
      }
    }
    log.info({ component: "sync" }, "sync poller stopped");
  }

  private async channelFor(roomId: string): Promise<string | null> {
    const known = this.channelOfRoom.get(roomId);
    if (known) return known;
    // Rooms are not cached as unknown: a room's first events arrive before its channel row.
    const channel = await findChannelByRoom(this.deps.sql, roomId);
    if (channel) this.channelOfRoom.set(roomId, channel.id);
    return channel?.id ?? null;
  }

  private async loadSince(): Promise<string | null> {
    const [row] = await this.deps.sql`select next_batch from matrix_sync_state where homeserver = ${this.stateKey}`;
    return (row?.next_batch as string | undefined) ?? null;
  }

  private async saveSince(nextBatch: string) {
    await this.deps.sql`
      insert into matrix_sync_state (homeserver, next_batch) values (${this.stateKey}, ${nextBatch})
      on conflict (homeserver) do update set next_batch = excluded.next_batch, updated_at = now()`;
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
