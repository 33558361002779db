import { mkdirSync } from "node:fs";
import { writeSummary } from "./summary.ts";
import { presetName } from "./lib/preset.ts";
import { knob } from "./lib/stats.ts";
import { sendPlan, sendScenario } from "./scenarios/send.ts";
import { fanoutPlan, fanoutScenario } from "./scenarios/fanout.ts";
import { readPlan, readScenario } from "./scenarios/read.ts";
import { memoryPlan, memoryScenario } from "./scenarios/memory.ts";
import { clusterPlan, clusterScenario } from "./scenarios/cluster.ts";

interface Scenario {
  run(): Promise<unknown>;
  estimateSeconds(): number;
}

const scenarios: Record<string, Scenario> = {
  send: { run: () => sendScenario("local"), estimateSeconds: () => sendPlan("local").estimateSeconds },
  "send-synapse": { run: () => sendScenario("synapse"), estimateSeconds: () => sendPlan("synapse").estimateSeconds },
  fanout: { run: fanoutScenario, estimateSeconds: () => fanoutPlan().estimateSeconds },
  read: { run: readScenario, estimateSeconds: () => readPlan().estimateSeconds },
  // Loaded only when run: it pulls in matrix-js-sdk. About a second per message through Synapse.
  syncback: {
    run: async () => (await import("./scenarios/syncback.ts")).syncbackScenario(),
    estimateSeconds: () => 15 + knob("BENCH_SYNCBACK_MESSAGES", 20),
  },
  memory: { run: memoryScenario, estimateSeconds: () => memoryPlan().estimateSeconds },
  // Needs NATS (JetStream) and starts four instances; explicit only (`bun run bench cluster`), not part of `all`.
  cluster: { run: clusterScenario, estimateSeconds: () => clusterPlan().estimateSeconds },
};

let preset: string;
try {
  preset = presetName();
} catch (err) {
  console.error(String((err as Error).message));
  process.exit(2);
}
// `--plan`: print what would run and the time estimate, run nothing.
const planOnly = process.argv.includes("--plan");
const wanted = process.argv.slice(2).find((a) => !a.startsWith("--")) ?? "all";
const needsSynapse = new Set(["send-synapse", "syncback"]);
const explicitOnly = new Set(["cluster"]);
// These need Synapse; without its environment `all` leaves it out and says so.
const names =
  wanted === "all" ? Object.keys(scenarios).filter((n) => !explicitOnly.has(n) && (!needsSynapse.has(n) || process.env.MATRIX_HOMESERVER_URL)) : [wanted];
const unknown = names.find((n) => !scenarios[n]);
if (unknown) {
  console.error(`unknown scenario ${unknown}; one of: all, ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
if (wanted === "all") console.log(`cluster is not part of all (it needs NATS and takes ~${minutes(scenarios.cluster!.estimateSeconds())}): bun run bench cluster`);
if (wanted === "all" && !names.includes("syncback")) console.log("send-synapse and syncback skipped: no MATRIX_HOMESERVER_URL (set -a; eval \"$(bun run --silent synapse env)\"; set +a)");

const estimates = Object.fromEntries(names.map((n) => [n, scenarios[n]!.estimateSeconds()]));
const totalEstimate = Object.values(estimates).reduce((a, b) => a + b, 0);
console.log(`BENCH_SIZE=${preset}: ${names.map((n) => `${n} ~${minutes(estimates[n]!)}`).join(", ")}; total ~${minutes(totalEstimate)}`);
if (planOnly) process.exit(0);

const date = new Date().toISOString().slice(0, 10);
const outDir = process.env.BENCH_OUT_DIR ?? new URL("./results/", import.meta.url).pathname;
mkdirSync(outDir, { recursive: true });
const durations: Record<string, number> = {};
for (const name of names) {
  const started = Date.now();
  console.log(`${name}: starting (estimate ~${minutes(estimates[name]!)})`);
  const result = await scenarios[name]!.run();
  durations[name] = (Date.now() - started) / 1000;
  const record = { date: new Date().toISOString(), host: hostInfo(), preset, duration_s: durations[name], estimate_s: estimates[name], ...(result as object) };
  await Bun.write(`${outDir}/${date}-${name}.json`, JSON.stringify(record, null, 2) + "\n");
  console.log(`${name}: ${minutes(durations[name]!)} (estimate ~${minutes(estimates[name]!)}); wrote ${outDir}/${date}-${name}.json`);
}

function hostInfo() {
  const os = require("node:os");
  return { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, mem_gb: Math.round(os.totalmem() / 2 ** 30), bun: Bun.version, loader: "same machine" };
}

function minutes(seconds: number) {
  return seconds < 90 ? `${Math.round(seconds)} s` : `${(seconds / 60).toFixed(1)} min`;
}

console.log(`wrote ${await writeSummary(outDir, date)}`);
console.log(`durations: ${names.map((n) => `${n} ${minutes(durations[n]!)}`).join(", ")}; total ${minutes(Object.values(durations).reduce((a, b) => a + b, 0))} (estimate ~${minutes(totalEstimate)})`);
