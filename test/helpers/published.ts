import type { EventBus, PublishedEvent } from "../../src/events/bus.ts";

/** What the service publishes (the in-process copy of what goes to NATS), in order, awaited without sleeping. */
export class PublishedLog {
  readonly events: PublishedEvent[] = [];
  private wake: (() => void) | null = null;

  record(bus: Pick<EventBus, "subscribe">): void {
    bus.subscribe((event) => {
      this.events.push(event);
      this.wake?.();
    });
  }

  /** The first event on `subject` whose payload matches `pred`, waited for up to `timeoutMs`. */
  async next(subject: string, pred: (payload: any) => boolean, timeoutMs = 5000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.find((e) => e.subject === subject && pred(e.payload));
      if (hit) return hit.payload;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`nothing published on ${subject}; got ${this.events.map((e) => e.subject).join(", ")}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}
