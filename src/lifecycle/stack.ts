/** Closers in start order; close() runs them in reverse, each once, and keeps going past failures. */
export class ShutdownStack {
  private readonly closers: Array<{ name: string; close: () => Promise<void> | void }> = [];

  push(name: string, close: () => Promise<void> | void): void {
    this.closers.push({ name, close });
  }

  async close(onError: (name: string, err: unknown) => void): Promise<void> {
    for (let c = this.closers.pop(); c; c = this.closers.pop()) {
      try {
        await c.close();
      } catch (err) {
        onError(c.name, err);
      }
    }
  }
}
