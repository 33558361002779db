import { connect, nanos, RetentionPolicy, type JetStreamClient, type NatsConnection } from "nats";
import type { Logger } from "../log.ts";
import { withTimeout } from "../deadline.ts";
import type { Sql } from "../store/db.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { deleteQueuedEvents, oldestQueuedEvents, queueEventsStatement, type QueuedEvent } from "../store/event-outbox.ts";
import type { EventBus, PublishedEvent } from "./bus.ts";
import { MemoryEventBus } from "./memory.ts";
import type { EventPayloads, Subject } from "./model.ts";

const encoder = new TextEncoder();
export const STREAM_NAME = "MESSAGING";
const STREAM_SUBJECTS = ["messaging.>"];
const FLUSH_BATCH = 200;

/**
 * Publishes to a JetStream stream (created if missing). Every event is first written to the
 * event_outbox table, then a single flusher publishes it with Nats-Msg-Id = event_id and deletes
 * it once JetStream acknowledged it. While NATS is unreachable events wait in the table and the
 * service keeps working; the connection is retried in the background, and start-up never waits
 * for the broker.
 */
export class NatsEventBus implements EventBus {
  readonly kind = "nats" as const;
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private readonly local = new MemoryEventBus();
  private closed = false;
  private readonly connecting: Promise<void>;
  private wakePause: (() => void) | null = null;
  /** Published events not yet in event_outbox, in publish order; written together. */
  private readonly unwritten: Array<{ eventId: string; subject: string; payload: unknown; written: () => void }> = [];
  private writing: Promise<void> | null = null;
  private flushing: Promise<void> | null = null;
  private flushAgain = false;
  private warnedDown = false;
  /** Cluster mode: only the elected flusher publishes the outbox; the others tell it when they queued something. */
  private flusher: { leading: boolean; queued: () => void } | null = null;

  constructor(
    private readonly url: string,
    private readonly sql: Sql,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
  ) {
    this.connecting = this.connectLoop();
  }

  publish<S extends Subject>(subject: S, payload: EventPayloads[S]): Promise<void> {
    void this.local.publish(subject, payload);
    const eventId = (payload as { event_id: string }).event_id;
    return new Promise<void>((written) => {
      this.unwritten.push({ eventId, subject, payload, written });
      this.writing ??= this.writeUnwritten();
    });
  }

  async outboxRows(events: PublishedEvent[]): Promise<QueuedEvent[]> {
    while (this.writing) await this.writing;
    return events.map(({ subject, payload }) => ({ eventId: (payload as { event_id: string }).event_id, subject, payload }));
  }

  queued(events: PublishedEvent[]): void {
    for (const { subject, payload } of events) void this.local.publish(subject, payload);
    this.announceQueued();
  }

  /** Written to event_outbox: the flusher (this instance, or the cluster's elected one) publishes it. */
  private announceQueued(): void {
    if (this.flusher && !this.flusher.leading) this.flusher.queued();
    else void this.flush();
  }

  /**
   * Events published while a write is in flight go into the next one: one INSERT for all of
   * them, in publish order, so a busy service writes its events in few round trips.
   */
  private async writeUnwritten(): Promise<void> {
    while (this.unwritten.length > 0) {
      const batch = this.unwritten.splice(0, FLUSH_BATCH);
      try {
        await queueEventsStatement(this.sql, batch);
      } catch (err) {
        this.log.error({ subjects: [...new Set(batch.map((e) => e.subject))], err: (err as Error).message }, "could not queue events for NATS");
      }
      for (const event of batch) event.written();
      this.announceQueued();
    }
    this.writing = null;
  }

  /** Cluster mode: from now on this instance flushes the event outbox only while `leading` is set. */
  shareFlushing(queued: () => void): void {
    this.flusher = { leading: false, queued };
  }

  /** Cluster mode: this instance became (or stopped being) the event-outbox flusher. */
  setLeading(leading: boolean): void {
    if (!this.flusher) return;
    this.flusher.leading = leading;
    if (leading) void this.flush();
  }

  /** The flusher is told another instance queued events. */
  flushSoon(): void {
    void this.flush();
  }

  subscribe(listener: (event: PublishedEvent) => void): () => void {
    return this.local.subscribe(listener);
  }

  /** Resolves once the first connection is up (or the bus is closed). */
  ready(): Promise<void> {
    return this.connecting;
  }

  /** A round trip to the server (PING/PONG), bounded by timeoutMs; refused while there is no connection. */
  async ping(timeoutMs: number): Promise<void> {
    const nc = this.nc;
    if (!nc || nc.isClosed()) throw new Error("not connected to NATS");
    await withTimeout(nc.flush(), timeoutMs);
  }

  /** Resolves when everything queued so far has been acknowledged by JetStream (or NATS is down). */
  async flushed(): Promise<void> {
    await this.writing;
    await this.flush();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakePause?.();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.connecting;
    await this.writing;
    await this.flushing;
    const nc = this.nc;
    this.nc = null;
    this.js = null;
    if (nc) await nc.drain().catch(() => nc.close());
    await this.local.close();
  }

  private flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    this.flushing = this.flushLoop()
      .catch((err) => this.log.error({ err: (err as Error).message }, "event outbox flush failed"))
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  private async flushLoop(): Promise<void> {
    if (this.flusher && !this.flusher.leading) return;
    do {
      this.flushAgain = false;
      for (;;) {
        const js = this.js;
        if (!js || this.nc?.isClosed() || (this.flusher && !this.flusher.leading)) return;
        const rows = await oldestQueuedEvents(this.sql, FLUSH_BATCH);
        if (rows.length === 0) break;
        // In order, one at a time: JetStream keeps the order they are acknowledged in.
        const acked: string[] = [];
        let failed = false;
        for (const row of rows) {
          try {
            await js.publish(row.subject, encoder.encode(JSON.stringify(row.payload)), { msgID: row.event_id, timeout: 5000 });
            acked.push(row.position);
          } catch (err) {
            this.metrics?.natsPublishFailed();
            if (!this.warnedDown) {
              this.log.warn({ err: (err as Error).message }, "nats unavailable; events wait in the outbox and the service keeps working");
            }
            this.warnedDown = true;
            this.retryLater();
            failed = true;
            break;
          }
        }
        // The acknowledged prefix leaves the outbox in one statement; a crash before it only
        // republishes them, and Nats-Msg-Id makes JetStream drop the copies.
        if (acked.length > 0) await deleteQueuedEvents(this.sql, acked);
        if (failed) return;
        if (this.warnedDown) this.log.info("nats is back; the event outbox is flushing");
        this.warnedDown = false;
        // A short batch was all the outbox held when it was read: whatever was queued since
        // woke this flush after its commit (flushAgain), so no read is spent to find it empty.
        if (rows.length < FLUSH_BATCH) break;
      }
    } while (this.flushAgain);
  }

  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  /** A publish failed while connected (a JetStream timeout, say): try again in a while. */
  private retryLater() {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.flush();
    }, 2000);
  }

  private async connectLoop() {
    let attempt = 0;
    while (!this.closed) {
      try {
        const nc = await connect({ servers: this.url, name: "daarion-messaging", maxReconnectAttempts: -1, reconnectTimeWait: 1000 });
        if (this.closed) {
          await nc.close();
          return;
        }
        await this.ensureStream(nc);
        this.nc = nc;
        this.js = nc.jetstream();
        this.log.info({ nats: this.url, stream: STREAM_NAME }, "nats connected");
        void this.watchStatus(nc);
        void this.flush();
        return;
      } catch (err) {
        if (attempt++ === 0) {
          this.log.warn({ err: (err as Error).message }, "nats unreachable; events wait in the outbox, retrying in the background");
        }
        await this.pause(Math.min(5000, 500 * attempt));
      }
    }
  }

  private async ensureStream(nc: NatsConnection) {
    const jsm = await nc.jetstreamManager();
    try {
      await jsm.streams.info(STREAM_NAME);
    } catch {
      await jsm.streams
        .add({
          name: STREAM_NAME,
          subjects: STREAM_SUBJECTS,
          retention: RetentionPolicy.Limits,
          max_age: nanos(7 * 24 * 3600 * 1000),
          // A republish within this window (after a lost acknowledgement) is dropped.
          duplicate_window: nanos(2 * 3600 * 1000),
        })
        .catch(async (err) => {
          // Another instance created it first.
          await jsm.streams.info(STREAM_NAME).catch(() => {
            throw err;
          });
        });
    }
  }

  private async watchStatus(nc: NatsConnection) {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") this.log.warn("nats disconnected; events wait in the outbox");
      if (status.type === "reconnect") {
        this.log.info("nats reconnected");
        void this.flush();
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakePause = null;
        resolve();
      }, ms);
      this.wakePause = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
