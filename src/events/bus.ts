import type { EventPayloads, Subject } from "./model.ts";

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
  /** For in-process consumers and tests. Returns an unsubscribe function. */
  subscribe(listener: (event: PublishedEvent) => void): () => void;
  /** Resolves when the broker answers within timeoutMs (readiness); the in-process bus always does. */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
