import type { Subprocess } from "bun";

export interface Child {
  proc: Subprocess;
  url: string;
  stop(): Promise<void>;
  rssKb(): number;
}

const here = new URL("..", import.meta.url).pathname;
export const repoRoot = new URL("../..", import.meta.url).pathname;
export const benchPath = (p: string) => here + p;

export async function freePort(): Promise<number> {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = s.port!;
  s.stop(true);
  return port;
}

/** Resident set size of a process, from /proc (Linux). */
export function rssKbOf(pid: number): number {
  try {
    const status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8") as string;
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/**
 * Starts a server process and waits until `readyPath` answers. Output goes to a log file so a
 * failing server can be diagnosed without flooding the bench output.
 */
export async function spawnServer(
  cmd: string[],
  opts: { env?: Record<string, string>; readyPath?: string; port: number; name: string; timeoutMs?: number },
): Promise<Child> {
  const log = Bun.file(`/tmp/bench-${opts.name}-${opts.port}.log`);
  const proc = Bun.spawn(cmd, {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdout: log,
    stderr: log,
  });
  const url = `http://127.0.0.1:${opts.port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${opts.name} exited with ${proc.exitCode}; see ${log.name}`);
    try {
      const res = await fetch(url + (opts.readyPath ?? "/health"));
      if (res.status < 500) break;
    } catch {}
    if (Date.now() > deadline) {
      proc.kill();
      throw new Error(`${opts.name} did not become ready; see ${log.name}`);
    }
    await Bun.sleep(50);
  }
  return {
    proc,
    url,
    rssKb: () => rssKbOf(proc.pid),
    async stop() {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}
