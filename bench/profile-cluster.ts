/**
 * Where a cluster send's CPU goes: one cluster of N instances (CLUSTER=on, a fresh PostgreSQL
 * database, the NATS at NATS_URL), C channels, S closed-loop senders round-robin over the
 * instances for T seconds. Prints, per successful send: CPU of each instance, of PostgreSQL's
 * processes, of nats-server and of this loader; PostgreSQL transactions and rows; and the
 * service's own counters (metrics) that moved. With --cpu-prof each instance also writes a
 * CPU profile (markdown) when it stops.
 * Usage: bun bench/profile-cluster.ts [--instances 3] [--channels 10] [--senders 64] [--seconds 8] [--rate R] [--to-owner] [--cpu-prof]
 */
import postgres from "postgres";
import { readdirSync, readFileSync } from "node:fs";
import { closedLoop } from "./lib/load.ts";
import { BENCH_USER } from "./lib/service.ts";
import { machineTicks, processCpuMs, startCluster, type Instance } from "./lib/cluster.ts";
import { round } from "./lib/stats.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const n = arg("instances", 3);
const channelCount = arg("channels", 10);
const senders = arg("senders", 64);
const seconds = arg("seconds", 8);
/** Paced instead of closed-loop: this many sends a second, each on its own (what the machine costs when not saturated). */
const rate = arg("rate", 0);
/** Every request to its channel's owner: nothing forwarded (what the hop costs, by difference). */
const toOwner = process.argv.includes("--to-owner");
const cpuProfDir = process.argv.includes("--cpu-prof") ? `/tmp/bench-cluster-prof-${Date.now()}` : undefined;

/** Processes whose command name is `comm` (from /proc), e.g. every PostgreSQL backend. */
function pidsOf(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}
const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + (processCpuMs(pid) || 0), 0);

/** Counters, and histogram sums and counts, summed over the instances' /metrics. */
async function counters(instances: Instance[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const i of instances) {
    const text = await (await fetch(`${i.url}/metrics`)).text();
    for (const line of text.split("\n")) {
      const m = /^([a-z_]+(?:_total|_sum|_count))(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
      if (!m || m[1]!.startsWith("process_") || m[1]!.startsWith("nodejs_")) continue;
      const key = m[1]! + (m[2] ?? "");
      out.set(key, (out.get(key) ?? 0) + Number(m[3]));
    }
  }
  return out;
}

/** Sends at a fixed rate for `seconds`, each without waiting for the ones before it. */
async function paced(perSecond: number, secs: number, send: (w: number, i: number) => Promise<boolean | string>) {
  const samples: number[] = [];
  let errors = 0;
  const start = performance.now();
  const total = Math.round(perSecond * secs);
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    const t0 = performance.now();
    inFlight.push(send(i, i).then((ok) => (ok === true ? void samples.push(performance.now() - t0) : void errors++), () => void errors++));
  }
  await Promise.all(inFlight);
  samples.sort((a, b) => a - b);
  const q = (p: number) => round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? NaN, 2);
  return { ok: samples.length, errors, latency: { n: samples.length, p50: q(0.5), p99: q(0.99) } };
}

const cluster = await startCluster(n, { tag: `p${n}`, leaseTtlMs: 5000, cpuProfDir });
try {
  const channels: string[] = [];
  for (let i = 0; i < channelCount; i++) channels.push(await cluster.createChannel());
  const owners = new Map<string, Instance>();
  for (const channel of channels) owners.set(channel, await cluster.ownerOf(channel));
  const headers = { "content-type": "application/json", "x-user-id": BENCH_USER };
  const send = async (w: number, i: number) => {
    const channel = channels[(w + i) % channels.length]!;
    const instance = toOwner ? owners.get(channel)! : cluster.instances[w % cluster.instances.length]!;
    const res = await fetch(`${instance.url}/api/messaging/channels/${channel}/messages`, { method: "POST", headers, body: JSON.stringify({ text: `profile message ${i}` }) });
    await res.arrayBuffer();
    return res.status === 201 || `${res.status}`;
  };
  await closedLoop(senders, { seconds: 2 }, send);
  // The warm-up's echoes and event flushes are not counted in the run.
  await Bun.sleep(3000);

  const dbUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
  const admin = postgres(dbUrl, { max: 1, onnotice: () => {} });
  const dbName = (await admin`select datname from pg_database where datname like ${"daarion_bench_cluster" + n + "%"} order by oid desc limit 1`)[0]!.datname as string;
  const dbStats = async () => {
    await Bun.sleep(600); // pg_stat is flushed at most every 500 ms
    const [r] = await admin`select xact_commit::int as commits, tup_inserted::int as inserted, tup_updated::int as updated, tup_deleted::int as deleted from pg_stat_database where datname = ${dbName}`;
    return r as { commits: number; inserted: number; updated: number; deleted: number };
  };
  const pg = pidsOf("postgres");
  const nats = pidsOf("nats-server");
  const before = { db: await dbStats(), metrics: await counters(cluster.instances), inst: cluster.instances.map((i) => processCpuMs(i.proc.pid)), pg: cpuOf(pg), nats: cpuOf(nats), loader: process.cpuUsage() };
  const ticks0 = machineTicks();
  const result = rate > 0 ? await paced(rate, seconds, send) : await closedLoop(senders, { seconds }, send);
  const inst = cluster.instances.map((i, k) => processCpuMs(i.proc.pid) - before.inst[k]!);
  const pgCpu = cpuOf(pg) - before.pg;
  const natsCpu = cpuOf(nats) - before.nats;
  const loader = process.cpuUsage(before.loader);
  // The sync echoes and event-outbox flushes of the last sends are counted too.
  await Bun.sleep(1500);
  const db = await dbStats();
  const metrics = await counters(cluster.instances);
  await admin.end();
  const ok = result.ok;
  const per = (v: number) => round(v / Math.max(1, ok), 3);
  const moved: Record<string, number> = {};
  for (const [key, value] of metrics) {
    const d = value - (before.metrics.get(key) ?? 0);
    if (d !== 0) moved[key] = per(d);
  }
  const forwardedShare = round(channels.filter((c) => owners.get(c) !== cluster.instances[0]).length / channels.length, 2);
  console.log(
    JSON.stringify(
      {
        instances: n,
        channels: channelCount,
        senders,
        seconds,
        mode: (rate > 0 ? `paced ${rate}/s` : `closed loop, ${senders} senders`) + (toOwner ? ", to the owners" : ", round-robin"),
        sends_per_s: Math.round(ok / seconds),
        machine_busy: round((machineTicks().busy - ticks0.busy) / Math.max(1, machineTicks().total - ticks0.total), 3),
        errors: result.errors,
        latency_ms: result.latency,
        channels_per_owner: Object.fromEntries(cluster.instances.map((i) => [i.name, channels.filter((c) => owners.get(c) === i).length])),
        leaders: await cluster.leaders(),
        forwarded_share_hint: forwardedShare,
        cpu_ms_per_send: {
          instances: Object.fromEntries(cluster.instances.map((i, k) => [i.name, per(inst[k]!)])),
          instances_total: per(inst.reduce((a, b) => a + b, 0)),
          postgres: per(pgCpu),
          nats: per(natsCpu),
          loader: per((loader.user + loader.system) / 1000),
        },
        postgres_per_send: { transactions: per(db.commits - before.db.commits), inserted: per(db.inserted - before.db.inserted), updated: per(db.updated - before.db.updated), deleted: per(db.deleted - before.db.deleted) },
        metrics_per_send: moved,
        cpu_profile_dir: cpuProfDir,
      },
      null,
      2,
    ),
  );
} finally {
  await cluster.stop();
}
