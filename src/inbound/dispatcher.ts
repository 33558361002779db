import type { Logger } from "../log.ts";
import type { Sql } from "../store/db.ts";
import type { ChannelRegistry } from "../channel/registry.ts";
import { findChannelByRoom } from "../store/channels.ts";
import { consumeInboxEvent, readInbox, type InboxRow } from "../store/inbox.ts";
import type { EphemeralEvent, MatrixEvent } from "../matrix/port.ts";
import type { HandlerTable } from "../channel/handlers.ts";

/** How many inbox rows a drain reads at a time. */
export const INBOX_PAGE = 500;

/**
 * Hands durable inbox events to their channels' actors: in inbox order within a room, rooms
 * side by side. An actor deletes an event's inbox row in the same transaction that indexes
 * it, so what is left after a crash is exactly what still needs doing.
 */
export class InboxDispatcher {
  private running: Promise<void> | null = null;
  private again = false;
  private readonly channelOfRoom = new Map<string, string>();
  private stopped = false;

  /** Cluster mode: only the elected instance drains; another one that stored events wakes it. */
  private leader: { isLeader(): boolean; wakeLeader(): void } | null = null;

  constructor(
    private readonly deps: {
      sql: Sql;
      registry: ChannelRegistry;
      log: Logger;
      handlers: HandlerTable;
      /** An event of a room that is no channel (a microDAO's space, say), before it is consumed. */
      otherRoom?: (event: MatrixEvent) => Promise<void>;
    },
  ) {}

  shareDraining(leader: { isLeader(): boolean; wakeLeader(): void }): void {
    this.leader = leader;
  }

  /** The event types the channels handle, which the sync filter asks for and the inbox keeps. */
  get eventTypes() {
    return this.deps.handlers.types;
  }

  /**
   * Starts a drain if none is running; resolves when the inbox was found empty. `firstPage`:
   * the inbox's first rows, read by the statement that just wrote them (storeSyncBatch); used
   * only by a drain that starts now, as one already running reads the inbox itself.
   */
  drain(firstPage: InboxRow[] | null = null): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.leader && !this.leader.isLeader()) {
      this.leader.wakeLeader();
      return Promise.resolve();
    }
    if (this.running) {
      this.again = true;
      return this.running;
    }
    // A failed drain (the database restarting, say) leaves the events in the inbox for the next one.
    this.running = this.loop(firstPage)
      .catch((err) => this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, "inbox drain failed; events stay in the inbox"))
      .finally(() => {
        this.running = null;
        // Asked for between the loop's last check and here: that drain must still happen.
        if (this.again && !this.stopped) void this.drain();
      });
    return this.running;
  }

  /**
   * Typing and receipts skip the durable inbox (they have no event id, and a lost one is
   * superseded by the next): each is queued on its channel's actor, in order, without waiting
   * for it to run. A full mailbox drops it, with a log line.
   */
  async deliverEphemeral(events: EphemeralEvent[]): Promise<void> {
    for (const event of events) {
      if (!this.deps.handlers.ephemeral.has(event.type) || this.stopped) continue;
      const channelId = await this.channelFor(event.room_id);
      if (!channelId) continue;
      try {
        this.deps.registry
          .ingestEphemeral(channelId, event)
          .catch((err) => this.deps.log.warn({ channel_id: channelId, type: event.type, err: String(err) }, "ephemeral event dropped"));
      } catch (err) {
        this.deps.log.warn({ channel_id: channelId, type: event.type, err: String(err) }, "ephemeral event dropped");
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  private async loop(firstPage: InboxRow[] | null): Promise<void> {
    do {
      this.again = false;
      for (;;) {
        if (this.stopped) return;
        const rows = firstPage ?? (await readInbox(this.deps.sql, INBOX_PAGE));
        firstPage = null;
        if (rows.length === 0) break;
        // A channel that failed keeps its events at the head of the inbox; stop here and let
        // the next drain (after the next sync batch or push) try again.
        if (!(await this.dispatch(rows))) return;
        // A short page was the whole inbox; what arrived since asked for another drain (`again`).
        if (rows.length < INBOX_PAGE) break;
      }
    } while (this.again && !this.stopped);
  }

  private async dispatch(rows: InboxRow[]): Promise<boolean> {
    const byChannel = new Map<string, InboxRow[]>();
    for (const row of rows) {
      const channelId = await this.channelFor(row.event.room_id);
      if (!channelId) {
        // Not a channel room (or one whose channel row is not written yet: its creation
        // writes the same name, topic and members itself).
        await this.deps.otherRoom?.(row.event).catch((err) =>
          this.deps.log.warn({ room_id: row.event.room_id, type: row.event.type, err: err instanceof Error ? err.message : String(err) }, "could not look at an event of a room that is no channel"),
        );
        await consumeInboxEvent(this.deps.sql, row.event.event_id);
        continue;
      }
      const list = byChannel.get(channelId) ?? [];
      list.push(row);
      byChannel.set(channelId, list);
    }
    const results = await Promise.all(
      [...byChannel].map(async ([channelId, list]) => {
        try {
          const unindexed = list.flatMap((row) => (row.indexed ? [] : [row.event.event_id]));
          await this.deps.registry.ingestAll(channelId, list.map((row) => row.event), unindexed);
          return true;
        } catch (err) {
          this.deps.log.warn({ channel_id: channelId, err: err instanceof Error ? err.message : String(err) }, "could not index a matrix event; it stays in the inbox");
          return false;
        }
      }),
    );
    return results.every(Boolean);
  }

  private async channelFor(roomId: string): Promise<string | null> {
    const known = this.channelOfRoom.get(roomId);
    if (known) return known;
    const channel = await findChannelByRoom(this.deps.sql, roomId);
    if (channel) this.channelOfRoom.set(roomId, channel.id);
    return channel?.id ?? null;
  }
}
