import { closedLoop, type LoadResult } from "../lib/load.ts";
import { benchPath, freePort, spawnServer } from "../lib/proc.ts";
import { freshDatabase, startService } from "../lib/service.ts";
import { knob, knobList, median, round } from "../lib/stats.ts";

/**
 * a) POST …/messages through the service (local Matrix backend or Synapse, PostgreSQL) against the bare
 * Bun.serve + postgres.js INSERT. Both servers run side by side; each configuration is measured
 * in alternating rounds (service, baseline, service, baseline…) and the median round is kept,
 * so a burst of noise from other work on the machine hits both alike.
 */
export async function sendScenario(backend: "local" | "synapse" = "local") {
  const synapseEnv = backend === "synapse" ? await synapseServiceEnv() : {};
  const prefix = backend === "synapse" ? "BENCH_SEND_SYNAPSE" : "BENCH_SEND";
  const channelCounts = knobList(`${prefix}_CHANNELS`, backend === "synapse" ? [1] : [1, 10]);
  const concurrencies = knobList(`${prefix}_CONCURRENCY`, backend === "synapse" ? [1, 4] : [1, 4, 16]);
  const seconds = knob("BENCH_SEND_SECONDS", 2);
  const rounds = knob("BENCH_ROUNDS", 2);

  const service = await startService(synapseEnv);
  const baseDb = await freshDatabase("daarion_bench_base");
  const basePort = await freePort();
  const baseline = await spawnServer(["bun", benchPath("servers/send-baseline.ts")], {
    name: "send-baseline",
    port: basePort,
    env: { PORT: String(basePort), DATABASE_URL: baseDb.url },
  });
  const rows: unknown[] = [];
  try {
    const maxChannels = Math.max(...channelCounts);
    const channels: string[] = [];
    for (let i = 0; i < maxChannels; i++) channels.push(await service.createChannel());
    // Warm both (JIT, pools, actors) so the first round is not a cold start.
    await run(service.url, channels.slice(0, 1), 4, 0.5);
    await run(baseline.url, channels.slice(0, 1), 4, 0.5);

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
  } finally {
    await service.stop();
    await baseline.stop();
    await baseDb.drop();
  }
  return { scenario: backend === "synapse" ? "send-synapse" : "send", backend, params: { channelCounts, concurrencies, seconds, rounds }, rows };
}

const summary = (r: LoadResult) => ({ per_second: r.perSecond, ok: r.ok, errors: r.errors, p50_ms: r.latency.p50, p99_ms: r.latency.p99, first_error: r.firstError });

function run(url: string, channels: string[], concurrency: number, seconds: number) {
  const headers = { "content-type": "application/json", "x-user-id": "user:bench" };
  return closedLoop(concurrency, { seconds }, async (w, i) => {
    const channel = channels[(w + i) % channels.length]!;
    const res = await fetch(`${url}/api/messaging/channels/${channel}/messages`, {
      method: "POST",
      headers,
      body: JSON.stringify({ text: `bench message ${i}` }),
    });
    await res.arrayBuffer();
    return res.status === 201 || `${res.status}`;
  });
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
