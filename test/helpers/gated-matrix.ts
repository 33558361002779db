import { sendEventsInTurn, type MatrixBackend, type OutgoingEvent } from "../../src/matrix/port.ts";

/**
 * Wraps the real Matrix backend so a test can hold message sends at the homeserver's door
 * (to keep a channel actor busy) or make them fail, and know when one arrives; or hold /sync
 * (to keep the service from catching up).
 */
export class MatrixGate {
  private open = true;
  private syncOpen = true;
  private syncWaiting: Array<() => void> = [];
  private failing: Error | null = null;
  private waiting: Array<() => void> = [];
  private arrivals: Array<() => void> = [];
  sends = 0;

  hold() {
    this.open = false;
  }

  release() {
    this.open = true;
    for (const go of this.waiting.splice(0)) go();
  }

  /** Holds every /sync at the door (the poller's first round among them) until releaseSync(). */
  holdSync() {
    this.syncOpen = false;
  }

  releaseSync() {
    this.syncOpen = true;
    for (const go of this.syncWaiting.splice(0)) go();
  }

  failWith(err: Error | null) {
    this.failing = err;
  }

  /** Resolves when the n-th send (counting from 1 since construction) reaches the gate. */
  arrived(n: number): Promise<void> {
    if (this.sends >= n) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (this.sends >= n ? (resolve(), true) : false);
      this.arrivals.push(() => void check());
    });
  }

  wrap = (inner: MatrixBackend): MatrixBackend => {
    const gate = this;
    const gatedSend = async (...args: Parameters<MatrixBackend["sendEvent"]>) => {
      gate.sends++;
      for (const a of gate.arrivals.splice(0)) a();
      if (!gate.open) await new Promise<void>((resolve) => gate.waiting.push(resolve));
      if (gate.failing) throw gate.failing;
      return inner.sendEvent(...args);
    };
    const gatedSync = async (...args: Parameters<MatrixBackend["sync"]>) => {
      // A held sync still ends when the poller stops, as a long-poll does.
      const signal = args[2];
      if (!gate.syncOpen && !signal.aborted) {
        await new Promise<void>((resolve) => {
          gate.syncWaiting.push(resolve);
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      }
      return inner.sync(...args);
    };
    return new Proxy(inner, {
      get(target, prop, receiver) {
        // A batch passes the gate one event at a time, as a homeserver without batches would.
        if (prop === "sendEvent") return gatedSend;
        if (prop === "sync") return gatedSync;
        if (prop === "sendEvents") return (roomId: string, events: OutgoingEvent[]) => sendEventsInTurn(gatedSend, roomId, events);
        // Behind the gate the homeserver stands apart from the index, as Synapse does: sends take its door.
        if (prop === "sendsInIndex") return undefined;
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };
}
