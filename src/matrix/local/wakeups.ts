/** In-process wake-ups for long-polling syncs: every write or ephemeral event wakes the waiting ones. */
export class SyncWakeups {
  private readonly waiters = new Set<() => void>();

  notify() {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  next() {
    let wake!: () => void;
    const notified = new Promise<void>((resolve) => (wake = resolve));
    this.waiters.add(wake);
    return {
      cancel: () => this.waiters.delete(wake),
      wait: (ms: number, signal: AbortSignal) =>
        new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            this.waiters.delete(wake);
            resolve();
          };
          const timer = setTimeout(done, ms);
          signal.addEventListener("abort", done, { once: true });
          notified.then(done);
        }),
    };
  }
}
