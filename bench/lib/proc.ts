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

/** What /proc/<pid>/status says of a process's memory, in KB (NaN once it is gone). */
export interface MemoryStatus {
  /** Resident set size: RssAnon + RssFile + RssShmem. */
  rss_kb: number;
  /** Anonymous memory: heaps (JavaScript, malloc, PGlite's WebAssembly memory). */
  anon_kb: number;
  /** File-backed pages (the bun executable, mapped libraries). */
  file_kb: number;
  shmem_kb: number;
  /** The resident high-water mark since the process started. */
  peak_kb: number;
}

export function memoryStatusOf(pid: number): MemoryStatus {
  let status = "";
  try {
    status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8") as string;
  } catch {}
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rss_kb: kb("VmRSS"), anon_kb: kb("RssAnon"), file_kb: kb("RssFile"), shmem_kb: kb("RssShmem"), peak_kb: kb("VmHWM") };
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
 * Open files allowed to the processes the bench starts: 10,000 WebSockets need more than the
 * usual soft limit of 1,024. Bun.spawn has no rlimit option, so a shell raises it and then
 * execs the command (same pid): to FD_LIMIT where allowed (root, or a hard limit that high),
 * else to the hard limit.
 */
export const FD_LIMIT = 65535;
const RAISE_FD_LIMIT = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null`;

export function withFdLimit(cmd: string[]): string[] {
  return ["sh", "-c", `${RAISE_FD_LIMIT}; exec "$@"`, "sh", ...cmd];
}

/** The open-file limit withFdLimit gets here. */
export function reachableFdLimit(): number {
  const out = Bun.spawnSync(["sh", "-c", `${RAISE_FD_LIMIT}; ulimit -n`]).stdout.toString().trim();
  return out === "unlimited" ? Infinity : Number(out);
}

/** Fails early, with the fix, when a process would run out of file descriptors mid-run. */
export function requireFdLimit(sockets: number, what: string): void {
  const needed = sockets + 1024;
  const limit = reachableFdLimit();
  if (!(limit >= needed)) {
    throw new Error(`${what} needs about ${needed} open files per process; this shell allows ${limit} (raise the hard limit: ulimit -Hn ${needed}, or run as root)`);
  }
}

/**
 * Starts a server process and waits until `readyPath` answers. Output goes to a log file so a
 * failing server can be diagnosed without flooding the bench output.
 */
export async function spawnServer(
  cmd: string[],
  opts: { env?: Record<string, string>; readyPath?: string; port: number; name: string; timeoutMs?: number; /** Default: this checkout. */ cwd?: string },
): Promise<Child> {
  const log = Bun.file(`/tmp/bench-${opts.name}-${opts.port}.log`);
  const proc = Bun.spawn(withFdLimit(cmd), {
    cwd: opts.cwd ?? repoRoot,
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

/** A child's stdout, line by line. */
export async function* lines(stream: ReadableStream<Uint8Array>) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
    }
  }
  if (buffer) yield buffer;
}

/**
 * Each subscriber process's report (one JSON line). Bounded: graceMs after it is called, every
 * process is told to finish, and what has not arrived by then it reports as missing.
 */
export async function subscriberReports<T>(
  clients: Array<{ stdin: { write(s: string): unknown; flush(): unknown } }>,
  readers: AsyncGenerator<string>[],
  graceMs: number,
  what: string,
): Promise<T[]> {
  const cutOff = setTimeout(() => {
    for (const client of clients) {
      try {
        client.stdin.write("finish\n");
        client.stdin.flush();
      } catch {} // already gone: its report, if any, is read below
    }
  }, graceMs);
  const reports: T[] = [];
  try {
    for (const r of readers) {
      const line = await r.next();
      if (line.done) throw new Error(`${what}: a subscriber process died`);
      reports.push(JSON.parse(line.value) as T);
    }
  } finally {
    clearTimeout(cutOff);
  }
  return reports;
}
