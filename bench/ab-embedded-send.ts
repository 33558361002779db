/**
 * Sends on the embedded defaults, this checkout against another one (an older commit in a
 * `git worktree`), alternating slice by slice in one run so machine noise hits both: REST sends
 * per second, the service's CPU per message (user + system, /proc/<pid>/stat) and its write and
 * read system calls per message (/proc/<pid>/io: sockets and PGlite's data files together), then
 * each one's RSS. Each service starts on a fresh DATA_DIR.
 * Usage: bun bench/ab-embedded-send.ts <other checkout> [rounds=8] [seconds=1.5]
 * Cells: BENCH_AB_CELLS (channels x senders, comma-separated; default 1x1,1x16,10x64).
 * BENCH_AB_POSTGRES=1: each on a fresh PostgreSQL database (DATABASE_URL) with the local Matrix backend instead.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { memoryStatusOf } from "./lib/proc.ts";
import { startService, type Service } from "./lib/service.ts";
import { median, round } from "./lib/stats.ts";

const other = process.argv[2];
if (!other) {
  console.error("usage: bun bench/ab-embedded-send.ts <other checkout> [rounds] [seconds]");
  process.exit(2);
}
const rounds = Number(process.argv[3] ?? 8);
const seconds = Number(process.argv[4] ?? 1.5);
const cells = (process.env.BENCH_AB_CELLS ?? "1x1,1x16,10x64").split(",").map((c) => c.split("x").map(Number) as [number, number]);

function counters(pid: number) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(io)![1]);
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second here).
  return { cpu_ms: (Number(stat[11]) + Number(stat[12])) * 10, syscr: field("syscr"), syscw: field("syscw") };
}

interface Side {
  name: string;
  service: Service;
  channels: string[];
  slices: Record<string, { rate: number; cpu_ms: number; syscr: number; syscw: number }[]>;
}

async function side(name: string, cwd?: string): Promise<Side> {
  const service = await startService({}, { embedded: !process.env.BENCH_AB_POSTGRES, cwd });
  const channels: string[] = [];
  for (let i = 0; i < Math.max(...cells.map(([c]) => c)); i++) channels.push(await service.createChannel());
  return { name, service, channels, slices: {} };
}

async function slice(s: Side, channels: number, senders: number, ms: number) {
  const before = counters(s.service.proc.pid);
  const end = performance.now() + ms;
  let sent = 0;
  await Promise.all(
    Array.from({ length: senders }, async (_, i) => {
      const channel = s.channels[i % channels]!;
      while (performance.now() < end) {
        const res = await s.service.send(channel, `ab message ${sent}`);
        await res.arrayBuffer();
        if (res.status !== 201) throw new Error(`${s.name}: send answered ${res.status}`);
        sent++;
      }
    }),
  );
  const after = counters(s.service.proc.pid);
  const per = (k: keyof typeof after) => (after[k] - before[k]) / Math.max(sent, 1);
  (s.slices[`${channels}x${senders}`] ??= []).push({ rate: sent / (ms / 1000), cpu_ms: per("cpu_ms"), syscr: per("syscr"), syscw: per("syscw") });
}

const sides = [await side(`other (${resolve(other)})`, resolve(other)), await side("this checkout")];
try {
  for (const s of sides) await slice(s, 1, 4, 1000); // warm-up, not kept
  for (const s of sides) s.slices = {};
  for (let r = 0; r < rounds; r++) {
    for (const [channels, senders] of cells) {
      for (const s of r % 2 ? [...sides].reverse() : sides) await slice(s, channels, senders, seconds * 1000);
    }
  }
  const [a, b] = sides as [Side, Side];
  console.log(`A = ${a.name}, B = ${b.name}; ${rounds} slices of ${seconds} s per cell, alternating`);
  for (const [channels, senders] of cells) {
    const key = `${channels}x${senders}`;
    const m = (s: Side, k: "rate" | "cpu_ms" | "syscr" | "syscw") => median(s.slices[key]!.map((x) => x[k]));
    const pooled = (s: Side) => s.slices[key]!.reduce((t, x) => t + x.rate, 0);
    console.log(
      `${key}: msg/s A ${round(m(a, "rate"), 0)} B ${round(m(b, "rate"), 0)} (B/A median ${round(m(b, "rate") / m(a, "rate"))}, pooled ${round(pooled(b) / pooled(a))}); ` +
        `CPU ms/msg A ${round(m(a, "cpu_ms"))} B ${round(m(b, "cpu_ms"))}; write syscalls/msg A ${round(m(a, "syscw"), 1)} B ${round(m(b, "syscw"), 1)}; read A ${round(m(a, "syscr"), 1)} B ${round(m(b, "syscr"), 1)}`,
    );
  }
  for (const s of sides) console.log(`${s.name}: RSS ${round(memoryStatusOf(s.service.proc.pid).rss_kb / 1024, 1)} MB at the end`);
} finally {
  for (const s of sides) await s.service.stop();
}
