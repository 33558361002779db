/** A bounded FIFO with an async take. Nothing in the service queues without a bound. */
export class MailboxFullError extends Error {
  constructor(readonly retryAfterSeconds = 1) {
    super("channel is busy");
    this.name = "MailboxFullError";
  }
}

export class MailboxClosedError extends Error {
  constructor() {
    super("channel actor is stopping");
    this.name = "MailboxClosedError";
  }
}

export class Mailbox<T> {
  private readonly items: T[] = [];
  private taker: ((item: T | null) => void) | null = null;
  private readonly spaceWaiters: Array<() => void> = [];
  private closed = false;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.items.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Enqueues or throws MailboxFullError: the caller gets an explicit answer, never a hidden queue. */
  offer(item: T): void {
    if (this.closed) throw new MailboxClosedError();
    if (this.items.length >= this.capacity) throw new MailboxFullError();
    this.deliver(item);
  }

  /** Waits for room instead of failing: for internal producers (the sync poller) that must not drop. */
  async put(item: T): Promise<void> {
    while (!this.closed && this.items.length >= this.capacity) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    this.offer(item);
  }

  /** The next item, or null after `idleMs` with nothing to do, or once closed and drained. */
  take(idleMs: number): Promise<T | null> {
    const item = this.items.shift();
    if (item !== undefined) {
      this.spaceWaiters.shift()?.();
      return Promise.resolve(item);
    }
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.taker = null;
        resolve(null);
      }, idleMs);
      this.taker = (next) => {
        clearTimeout(timer);
        this.taker = null;
        resolve(next);
      };
    });
  }

  /** Takes, without waiting, the queued items at the head that match, up to `max`. */
  takeWhile(matches: (item: T) => boolean, max: number): T[] {
    let count = 0;
    while (count < max && count < this.items.length && matches(this.items[count]!)) count++;
    const taken = this.items.splice(0, count);
    for (let i = 0; i < count; i++) this.spaceWaiters.shift()?.();
    return taken;
  }

  /** Refuses new items; what is queued is still handed out by take(). */
  close(): void {
    this.closed = true;
    this.taker?.(null);
    for (const wake of this.spaceWaiters.splice(0)) wake();
  }

  private deliver(item: T) {
    if (this.taker) this.taker(item);
    else this.items.push(item);
  }
}
