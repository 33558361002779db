/**
 * Where a send's time goes: sends N messages one at a time to one channel of a service
 * started under `bun --cpu-prof`, and counts the PostgreSQL statements (committed
 * transactions, rows written) the service's database saw per message.
 * Usage: bun bench/profile-send.ts [N]
 */
import postgres from "postgres";
import { startService } from "./lib/service.ts";
import { latency, nowMs } from "./lib/stats.ts";

const n = Number(process.argv[2] ?? 200);
const profDir = `/tmp/bench-cpu-prof-${Date.now()}`;
const service = await startService({ BENCH_CPU_PROF_DIR: profDir });
try {
  const channel = await service.createChannel();
  for (let i = 0; i < 20; i++) await (await service.send(channel, `warm ${i}`)).arrayBuffer();
  const dbName = new URL(service.dbUrl).pathname.slice(1);
  const admin = postgres(service.dbUrl, { max: 1, onnotice: () => {} });
  const stats = async () => {
    await Bun.sleep(600); // pg_stat is flushed at most every 500 ms
    const [r] = await admin`select xact_commit::int as commits, tup_inserted::int as inserted, tup_updated::int as updated, tup_deleted::int as deleted, tup_returned::bigint as returned from pg_stat_database where datname = ${dbName}`;
    return r!;
  };
  const before = await stats();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    const res = await service.send(channel, `profile ${i}`);
    await res.arrayBuffer();
    samples.push(nowMs() - t0);
  }
  // Let the sync echo of the last sends be ingested before counting.
  await Bun.sleep(1000);
  const after = await stats();
  await admin.end();
  const per = (k: "commits" | "inserted" | "updated" | "deleted") => Math.round(((after[k] - before[k]) / n) * 10) / 10;
  console.log(JSON.stringify({ messages: n, latency_ms: latency(samples), per_message: { transactions: per("commits"), rows_inserted: per("inserted"), rows_updated: per("updated"), rows_deleted: per("deleted") }, cpu_profile_dir: profDir }, null, 2));
} finally {
  await service.stop();
}
