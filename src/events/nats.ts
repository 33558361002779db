import { connect, type NatsConnection } from "nats";
import type { Logger } from "../log.ts";
import type { EventBus, PublishedEvent } from "./bus.ts";
import { MemoryEventBus } from "./memory.ts";
import type { EventPayloads, Subject } from "./model.ts";

const encoder = new TextEncoder();

/**
 * Publishes to NATS core subjects. The connection is made in the background and retried
 * until it succeeds or the bus closes, so start-up never waits for the broker; while it is unreachable, events are
 * dropped with a warning (a durable outbox is the reliability issue's job).
 */
export class NatsEventBus implements EventBus {
  readonly kind = "nats" as const;
  private nc: NatsConnection | null = null;
  private readonly local = new MemoryEventBus();
  private closed = false;
  private readonly connecting: Promise<void>;
  private warnedDown = false;
  private wakePause: (() => void) | null = null;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
  ) {
    this.connecting = this.connectLoop();
  }

  private async connectLoop() {
    let attempt = 0;
    while (!this.closed) {
      try {
        const nc = await connect({
          servers: this.url,
          name: "daarion-messaging",
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1000,
        });
        if (this.closed) {
          await nc.close();
          return;
        }
        this.nc = nc;
        this.log.info({ nats: this.url }, "nats connected");
        void this.watchStatus(nc);
        return;
      } catch (err) {
        if (attempt++ === 0) {
          this.log.warn({ err: (err as Error).message }, "nats unreachable; the service keeps working and retries in the background");
        }
        await this.pause(Math.min(5000, 500 * attempt));
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

  private async watchStatus(nc: NatsConnection) {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") this.log.warn("nats disconnected; the service keeps working and events wait for reconnection");
      if (status.type === "reconnect") this.log.info("nats reconnected");
    }
  }

  /** Resolves once the first connection is up (or the bus is closed). */
  ready(): Promise<void> {
    return this.connecting;
  }

  publish<S extends Subject>(subject: S, payload: EventPayloads[S]): void {
    this.local.publish(subject, payload);
    const nc = this.nc;
    if (!nc || nc.isClosed()) {
      if (!this.warnedDown) this.log.warn({ subject }, "nats unavailable; event not published, the service keeps working");
      this.warnedDown = true;
      return;
    }
    this.warnedDown = false;
    try {
      nc.publish(subject, encoder.encode(JSON.stringify(payload)));
    } catch (err) {
      this.log.warn({ subject, err: (err as Error).message }, "nats publish failed; the service keeps working");
    }
  }

  subscribe(listener: (event: PublishedEvent) => void): () => void {
    return this.local.subscribe(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakePause?.();
    await this.connecting;
    const nc = this.nc;
    this.nc = null;
    if (nc) {
      await nc.drain().catch(() => nc.close());
    }
    await this.local.close();
  }
}
