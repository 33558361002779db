import type { EventBus, PublishedEvent } from "./bus.ts";
import type { EventPayloads, Subject } from "./model.ts";

export class MemoryEventBus implements EventBus {
  readonly kind = "memory" as const;
  private readonly listeners = new Set<(event: PublishedEvent) => void>();

  async publish<S extends Subject>(subject: S, payload: EventPayloads[S]): Promise<void> {
    for (const listener of this.listeners) {
      try {
        listener({ subject, payload } as PublishedEvent);
      } catch {
        // A faulty in-process listener must not break the publisher.
      }
    }
  }

  async outboxRows(): Promise<null> {
    return null;
  }

  queued(events: PublishedEvent[]): void {
    for (const event of events) void this.publish(event.subject, event.payload);
  }

  subscribe(listener: (event: PublishedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
