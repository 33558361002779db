/**
 * Where a loaded send's CPU goes: closed-loop sends (C channels × S senders, T seconds) to a
 * service on a fresh PostgreSQL database, reporting per message the service's CPU time, the
 * PostgreSQL server's CPU time (all its processes) and the committed transactions, beside the
 * rate. With PROFILE=1 the service runs under `bun --cpu-prof` (the profile's directory is printed).
 * Usage: bun bench/profile-send-load.ts [channels] [senders] [seconds]
 */
import { readFileSync, readdirSync } from "node:fs";
import postgres from "postgres";
import { startService } from "./lib/service.ts";
import { sendLoad } from "./lib/send-load.ts";

const [channelCount = 100, senders = 64, seconds = 5] = process.argv.slice(2).map(Number);
const ticksPerSecond = 100;

function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return 0;
  }
}

/** CPU of every process named postgres (the server and its backends), including ended ones' time charged to the postmaster's children. */
function postgresCpuSeconds(): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      const fields = stat.split(") ")[1]!.split(" ");
      total += (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / ticksPerSecond;
    } catch {}
  }
  return total;
}

const profDir = process.env.PROFILE ? `/tmp/bench-cpu-prof-${Date.now()}` : undefined;
const service = await startService(profDir ? { BENCH_CPU_PROF_DIR: profDir } : {});
try {
  const channels = await Promise.all(Array.from({ length: channelCount }, () => service.createChannel()));
  await sendLoad(service.url, channels, senders, 1);
  const dbName = new URL(service.dbUrl).pathname.slice(1);
  const admin = postgres(service.dbUrl, { max: 1, onnotice: () => {} });
  const commits = async () => {
    await Bun.sleep(600); // pg_stat is flushed at most every 500 ms
    const [r] = await admin`select xact_commit::int as commits from pg_stat_database where datname = ${dbName}`;
    return r!.commits as number;
  };
  const c0 = await commits();
  const s0 = cpuSeconds(service.proc.pid);
  const p0 = postgresCpuSeconds();
  const l0 = process.cpuUsage();
  const result = await sendLoad(service.url, channels, senders, seconds);
  const s1 = cpuSeconds(service.proc.pid);
  const p1 = postgresCpuSeconds();
  const l1 = process.cpuUsage(l0);
  const c1 = await commits();
  await admin.end();
  const n = result.ok;
  const us = (s: number) => Math.round((s / n) * 1e6);
  console.log(
    JSON.stringify(
      {
        channels: channelCount,
        senders,
        rate: Math.round(n / seconds),
        errors: result.errors,
        per_message: {
          service_cpu_us: us(s1 - s0),
          postgres_cpu_us: us(p1 - p0),
          loader_cpu_us: us((l1.user + l1.system) / 1e6),
          transactions: Math.round(((c1 - c0) / n) * 100) / 100,
        },
        cpu_profile_dir: profDir ?? null,
      },
      null,
      2,
    ),
  );
} finally {
  await service.stop();
}
