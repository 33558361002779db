import postgres from "postgres";
import type { LoadResult } from "../lib/load.ts";
import { sendLoad } from "../lib/send-load.ts";
import { processCpuMs } from "../lib/cluster.ts";
import { POLICY_LIMITS_UNREACHED, startService } from "../lib/service.ts";
import { sized, sizedList, type Plan } from "../lib/preset.ts";
import { median, round } from "../lib/stats.ts";

export interface LimitsParams {
  channelCounts: number[];
  concurrencies: number[];
  seconds: number;
  rounds: number;
  control: boolean;
}

export function limitsPlan(): Plan<LimitsParams> {
  // BENCH_SEND_LIMITS_CHANNELS=0 leaves the case out.
  const channelCounts = process.env.BENCH_SEND_LIMITS_CHANNELS === "0" ? [] : sizedList("BENCH_SEND_LIMITS_CHANNELS", { quick: [1, 10], full: [1, 10, 100] });
  const concurrencies = sizedList("BENCH_SEND_LIMITS_CONCURRENCY", { quick: [16], full: [1, 16, 64] });
  const seconds = sized("BENCH_SEND_LIMITS_SECONDS", { quick: 1, full: 2 });
  const rounds = sized("BENCH_SEND_LIMITS_ROUNDS", { quick: 4, full: 4 });
  // BENCH_SEND_LIMITS_CONTROL=1: "on" runs with the limits off too (an A/A run: the harness's noise floor).
  const control = process.env.BENCH_SEND_LIMITS_CONTROL === "1";
  const cells = channelCounts.length * concurrencies.length;
  // Two services' start-up, channels and warm-up, then two configurations per round.
  const estimateSeconds = cells === 0 ? 0 : 12 + Math.max(...channelCounts) * 0.08 + cells * rounds * 2 * (seconds + 0.1);
  return { params: { channelCounts, concurrencies, seconds, rounds, control }, estimateSeconds: Math.round(estimateSeconds) };
}

/**
 * What the default rate limiter costs a send (issue 15, target 2: at most 10 % more than limits
 * off). Two services start side by side for this case: `off` (POLICY_LIMITS_OFF, as in the send
 * scenario) and the same service with every bucket on and budgets the bench never reaches
 * (POLICY_LIMITS_UNREACHED), so each send does the default configuration's limiter work and is
 * admitted. Both are fresh and warmed alike: reusing the send scenario's service, warmed by its
 * whole grid, against a cold one made an A/A run read 0.78. Rounds alternate, the order swapped
 * every round (off, on, on, off, …) so drift and other work on the machine hit both alike.
 */
export async function limitsCase() {
  const { channelCounts, concurrencies, seconds, rounds, control } = limitsPlan().params;
  if (channelCounts.length === 0) return null;
  const off = await startService();
  const on = await startService(control ? {} : POLICY_LIMITS_UNREACHED).catch(async (err) => {
    await off.stop();
    throw err;
  });
  const services = { off, on };
  // To find each service's PostgreSQL backends (on this machine): their CPU is part of what a send costs.
  const admin = { off: postgres(off.dbUrl, { max: 1, onnotice: () => {} }), on: postgres(on.dbUrl, { max: 1, onnotice: () => {} }) };
  const rows: unknown[] = [];
  try {
    const maxChannels = Math.max(...channelCounts);
    const channels = { off: [] as string[], on: [] as string[] };
    for (let i = 0; i < maxChannels; i++) {
      channels.off.push(await off.createChannel());
      channels.on.push(await on.createChannel());
    }
    // Both warmed alike, long enough for the JIT to settle.
    for (const which of ["off", "on"] as const) {
      await sendLoad(services[which].url, channels[which].slice(0, 1), 4, 1);
      await sendLoad(services[which].url, channels[which].slice(0, maxChannels), 16, 1);
    }
    for (const nChannels of channelCounts) {
      for (const concurrency of concurrencies) {
        const results = { off: [] as LoadResult[], on: [] as LoadResult[] };
        // CPU (user + system) of the service process and of its database's backends: figures the
        // other work on the machine disturbs less than throughput.
        const cpuMs = { off: { service: 0, postgres: 0 }, on: { service: 0, postgres: 0 } };
        const measure = async (which: "off" | "on") => {
          const service = services[which];
          const backendsBefore = new Map((await backendPids(admin[which])).map((pid) => [pid, processCpuMs(pid)]));
          const before = processCpuMs(service.proc.pid);
          results[which].push(await sendLoad(service.url, channels[which].slice(0, nChannels), concurrency, seconds));
          cpuMs[which].service += processCpuMs(service.proc.pid) - before;
          // A backend started during the round counts from its start.
          for (const pid of await backendPids(admin[which])) {
            const now = processCpuMs(pid);
            if (Number.isFinite(now)) cpuMs[which].postgres += now - (backendsBefore.get(pid) ?? 0);
          }
        };
        for (let r = 0; r < rounds; r++) {
          for (const which of r % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const)) await measure(which);
        }
        const pooled = (rs: LoadResult[]) => rs.reduce((n, x) => n + x.ok, 0) / rs.reduce((n, x) => n + x.seconds, 0);
        const ratio = pooled(results.on) / pooled(results.off);
        const sends = (which: "off" | "on") => results[which].reduce((n, x) => n + x.ok, 0);
        const perSend = (which: "off" | "on", part: "service" | "postgres") => cpuMs[which][part] / sends(which);
        const cpuPerSend = (which: "off" | "on") => perSend(which, "service") + perSend(which, "postgres");
        const roundRatios = results.on.map((x, i) => x.perSecond / results.off[i]!.perSecond);
        const row = {
          channels: nChannels,
          concurrency,
          off: summary(results.off, pooled(results.off)),
          on: summary(results.on, pooled(results.on)),
          // on ÷ off, pooled over the rounds; the extra cost per send is 1 / ratio − 1.
          ratio: round(ratio, 3),
          extra_cost_pct: round(100 * (1 / ratio - 1), 1),
          round_ratios: roundRatios.map((x) => round(x, 3)),
          median_round_ratio: round(median(roundRatios), 3),
          // Service process plus its PostgreSQL backends, per admitted send.
          cpu_ms_per_send: { off: round(cpuPerSend("off"), 3), on: round(cpuPerSend("on"), 3) },
          cpu_ms_per_send_parts: {
            off: { service: round(perSend("off", "service"), 3), postgres: round(perSend("off", "postgres"), 3) },
            on: { service: round(perSend("on", "service"), 3), postgres: round(perSend("on", "postgres"), 3) },
          },
          cpu_extra_pct: round(100 * (cpuPerSend("on") / cpuPerSend("off") - 1), 1),
        };
        console.log(
          `send limits${control ? " (control: both off)" : ""} ch=${nChannels} c=${concurrency}: off ${row.off.per_second}/s p50 ${row.off.p50_ms} | on ${row.on.per_second}/s p50 ${row.on.p50_ms} | on ÷ off ${row.ratio} (extra cost ${row.extra_cost_pct} %; median round ${row.median_round_ratio}; rounds ${row.round_ratios.join(", ")}) | CPU per send (service + PostgreSQL) ${row.cpu_ms_per_send.off} → ${row.cpu_ms_per_send.on} ms (${row.cpu_extra_pct} %)${row.on.errors ? ` errors ${row.on.errors} ${row.on.first_error}` : ""}`,
        );
        rows.push(row);
      }
    }
  } finally {
    await admin.off.end();
    await admin.on.end();
    await on.stop();
    await off.stop();
  }
  return { params: { channelCounts, concurrencies, seconds, rounds, control }, rows };
}

const summary = (rs: LoadResult[], perSecond: number) => ({
  per_second: Math.round(perSecond),
  ok: rs.reduce((n, x) => n + x.ok, 0),
  errors: rs.reduce((n, x) => n + x.errors, 0),
  first_error: rs.find((x) => x.firstError)?.firstError,
  p50_ms: median(rs.map((x) => x.latency.p50)),
  p99_ms: median(rs.map((x) => x.latency.p99)),
  rounds: rs.map((x) => x.perSecond),
});

/** The PostgreSQL backends serving a database, but the one asking. */
const backendPids = async (sql: postgres.Sql) =>
  (await sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`).map((r) => r.pid);
