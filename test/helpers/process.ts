import type { Subprocess } from "bun";

/** Reads a child's stdout line by line and lets a test await a matching line, with a timeout. */
export class LineWatcher {
  readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.pump(stream);
  }

  private async pump(stream: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = buffer.indexOf("\n")) >= 0) {
        this.lines.push(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
      }
      this.waiter?.();
    }
    this.ended = true;
    this.waiter?.();
  }

  /** Waits until `count` lines match. */
  async waitFor(pred: (line: string) => boolean, count = 1, timeoutMs = 20000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hits = this.lines.filter(pred);
      if (hits.length >= count) return hits;
      const left = deadline - Date.now();
      if (left <= 0 || this.ended) {
        throw new Error(`expected ${count} matching line(s); output was:\n${this.lines.slice(-30).join("\n")}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = null;
          resolve();
        };
      });
    }
  }
}

export async function freePort(): Promise<number> {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() });
  const port = probe.port!;
  await probe.stop(true);
  return port;
}

export async function terminate(proc: Subprocess, timeoutMs = 10000): Promise<number | null> {
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return code;
}
