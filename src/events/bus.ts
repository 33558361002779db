import type { EventPayloads, Subject } from "./model.ts";
import type { QueuedEvent } from "../store/event-outbox.ts";

export interface PublishedEvent<S extends Subject = Subject> {
  subject: S;
  payload: EventPayloads[S];
}

/** The events port: NATS in production, an in-process bus on a laptop. */
export interface EventBus {
  readonly kind: "nats" | "memory";
  /**
   * Resolves once the event is durably queued for the broker (at once for the in-process bus).
   * Never rejects: a broker outage must not fail a send.
   */
  publish<S extends Subject>(subject: S, payload: EventPayloads[S]): Promise<void>;
  /**
   * For events a caller writes to the event outbox in its own statement, with the index write
   * they announce (both durable, or neither): their outbox rows, or null when this bus keeps no
   * outbox. Resolves once the events published before are written, so the order holds.
   */
  outboxRows(events: PublishedEvent[]): Promise<QueuedEvent[] | null>;
  /** Those events are committed (or, for a bus without an outbox, due): deliver them in-process and to the broker. */
  queued(events: PublishedEvent[]): void;
  /** For in-process consumers and tests. Returns an unsubscribe function. */
  subscribe(listener: (event: PublishedEvent) => void): () => void;
  /** Resolves when the broker answers within timeoutMs (readiness); the in-process bus always does. */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
