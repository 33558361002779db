import type { Subprocess } from "bun";
import { lines } from "../../bench/lib/proc.ts";

/** Reads a child's stdout line by line and lets a test await a matching line, with a timeout. */
export class LineWatcher {
  readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.pump(stream);
  }

  private async pump(stream: ReadableStream<Uint8Array>) {
    for await (const line of lines(stream)) {
      this.lines.push(line);
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
