import type { LoadResult } from "../lib/load.ts";
import { sendLoad as run } from "../lib/send-load.ts";
import { benchPath, freePort, spawnServer } from "../lib/proc.ts";
import { freshDatabase, startService } from "../lib/service.ts";
import { sized, sizedList, type Plan } from "../lib/preset.ts";
import { knobList, median, round } from "../lib/stats.ts";
import { limitsCase, limitsPlan } from "./send-limits.ts";
import { roomsCase, roomsPlan } from "./send-synapse-rooms.ts";

export interface SendParams {
  channelCounts: number[];
  concurrencies: number[];
  seconds: number;
  rounds: number;
}

export function sendPlan(backend: "local" | "synapse"): Plan<SendParams> {
  // Synapse answers each send in ~100 ms; its sizes stay small in both presets.
  const params =
    backend === "synapse"
      ? { channelCounts: knobList("BENCH_SEND_SYNAPSE_CHANNELS", [1]), concurrencies: knobList("BENCH_SEND_SYNAPSE_CONCURRENCY", [1, 4]) }
      : {
          // BENCH_SEND_CHANNELS=0 leaves the service-against-baseline cells out (the limits case still runs).
          channelCounts: sizedList("BENCH_SEND_CHANNELS", { quick: [1, 10], full: [1, 10, 100] }),
          concurrencies: sizedList("BENCH_SEND_CONCURRENCY", { quick: [1, 4, 16], full: [1, 4, 16, 64] }),
        };
  const seconds = sized("BENCH_SEND_SECONDS", { quick: 2, full: 3 });
  const rounds = sized("BENCH_ROUNDS", { quick: 2, full: 3 });
  const cells = params.channelCounts.length * params.concurrencies.length;
  // Two servers per round, plus start-up and creating the channels (~20 ms each).
  const estimateSeconds = 8 + Math.max(0, ...params.channelCounts) * 0.02 + cells * rounds * 2 * (seconds + 0.1);
  // The limiter's cost (send-limits.ts) runs on the local backend only.
  // The limiter's cost on the local backend; on Synapse, several rooms against a plain client.
  const extra = backend === "local" ? limitsPlan().estimateSeconds : roomsPlan().estimateSeconds;
  return { params: { ...params, seconds, rounds }, estimateSeconds: Math.round(estimateSeconds + extra) };
}

/**
 * a) POST …/messages through the service (local Matrix backend or Synapse, PostgreSQL) against the bare
 * Bun.serve + postgres.js INSERT. Both servers run side by side; each configuration is measured
 * in alternating rounds (service, baseline, service, baseline…) and the median round is kept,
 * so a burst of noise from other work on the machine hits both alike.
 */
export async function sendScenario(backend: "local" | "synapse" = "local") {
  const { channelCounts, concurrencies, seconds, rounds } = sendPlan(backend).params;
  const synapseEnv = backend === "synapse" ? await synapseServiceEnv() : {};

  const service = await startService(synapseEnv);
  const baseDb = await freshDatabase("daarion_bench_base");
  const basePort = await freePort();
  const baseline = await spawnServer(["bun", benchPath("servers/send-baseline.ts")], {
    name: "send-baseline",
    port: basePort,
    env: { PORT: String(basePort), DATABASE_URL: baseDb.url },
  });
  const rows: unknown[] = [];
  let limits: Awaited<ReturnType<typeof limitsCase>> = null;
  let rooms: Awaited<ReturnType<typeof roomsCase>> | null = null;
  try {
    const maxChannels = Math.max(...channelCounts);
    const channels: string[] = [];
    for (let i = 0; i < maxChannels; i++) channels.push(await service.createChannel());
    // Warm both (JIT, pools, actors) so the first round is not a cold start.
    if (channels.length > 0) {
      await run(service.url, channels.slice(0, 1), 4, 0.5);
      await run(baseline.url, channels.slice(0, 1), 4, 0.5);
    }

    for (const nChannels of channelCounts) {
      for (const concurrency of concurrencies) {
        const svc: LoadResult[] = [];
        const base: LoadResult[] = [];
        for (let r = 0; r < rounds; r++) {
          svc.push(await run(service.url, channels.slice(0, nChannels), concurrency, seconds));
          base.push(await run(baseline.url, channels.slice(0, nChannels), concurrency, seconds));
        }
        const pick = (rs: LoadResult[]) => rs.find((r) => r.perSecond === median(rs.map((x) => x.perSecond)))!;
        const s = pick(svc);
        const b = pick(base);
        const row = {
          channels: nChannels,
          concurrency,
          service: summary(s),
          baseline: summary(b),
          ratio: round(s.perSecond / b.perSecond, 3),
          rounds: { service: svc.map((x) => x.perSecond), baseline: base.map((x) => x.perSecond) },
        };
        console.log(
          `send ch=${nChannels} c=${concurrency}: service ${s.perSecond}/s p50 ${s.latency.p50} p99 ${s.latency.p99} | baseline ${b.perSecond}/s p50 ${b.latency.p50} p99 ${b.latency.p99} | ratio ${row.ratio}${s.errors ? ` errors ${s.errors} ${s.firstError}` : ""}`,
        );
        rows.push(row);
      }
    }
    if (backend === "local") limits = await limitsCase();
    else rooms = await roomsCase(service, await synapseMatrix());
  } finally {
    await service.stop();
    await baseline.stop();
    await baseDb.drop();
  }
  return { scenario: backend === "synapse" ? "send-synapse" : "send", backend, params: { channelCounts, concurrencies, seconds, rounds }, rows, ...(limits ? { limits } : {}), ...(rooms ? { rooms } : {}) };
}

const summary = (r: LoadResult) => ({ per_second: r.perSecond, ok: r.ok, errors: r.errors, p50_ms: r.latency.p50, p99_ms: r.latency.p99, first_error: r.firstError });

async function synapseMatrix() {
  const { synapse } = await import("../../test/helpers/synapse.ts");
  return { url: synapse!.url, asToken: synapse!.asToken, serverName: synapse!.serverName };
}

/** The service's Matrix settings for the Synapse started by `bun run synapse start`. */
async function synapseServiceEnv(): Promise<Record<string, string>> {
  const { synapse } = await import("../../test/helpers/synapse.ts");
  if (!synapse) throw new Error("send-synapse needs the Synapse environment (set -a; eval \"$(bun run --silent synapse env)\"; set +a)");
  return {
    MATRIX_HOMESERVER_URL: synapse.url,
    MATRIX_SERVER_NAME: synapse.serverName,
    MATRIX_AS_TOKEN: synapse.asToken,
    MATRIX_HS_TOKEN: synapse.hsToken,
  };
}
