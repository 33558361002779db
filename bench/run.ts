import { mkdirSync } from "node:fs";
import { writeSummary } from "./summary.ts";
import { sendScenario } from "./scenarios/send.ts";
import { fanoutScenario } from "./scenarios/fanout.ts";
import { readScenario } from "./scenarios/read.ts";
import { memoryScenario } from "./scenarios/memory.ts";

const scenarios: Record<string, () => Promise<unknown>> = {
  send: () => sendScenario("local"),
  "send-synapse": () => sendScenario("synapse"),
  fanout: fanoutScenario,
  read: readScenario,
  // Loaded only when run: it pulls in matrix-js-sdk.
  syncback: async () => (await import("./scenarios/syncback.ts")).syncbackScenario(),
  memory: memoryScenario,
};

const wanted = process.argv[2] ?? "all";
const needsSynapse = new Set(["send-synapse", "syncback"]);
// These need Synapse; without its environment `all` leaves it out and says so.
const names = wanted === "all" ? Object.keys(scenarios).filter((n) => !needsSynapse.has(n) || process.env.MATRIX_HOMESERVER_URL) : [wanted];
if (wanted === "all" && !names.includes("syncback")) console.log("send-synapse and syncback skipped: no MATRIX_HOMESERVER_URL (set -a; eval \"$(bun run --silent synapse env)\"; set +a)");
const date = new Date().toISOString().slice(0, 10);
const outDir = process.env.BENCH_OUT_DIR ?? new URL("./results/", import.meta.url).pathname;
mkdirSync(outDir, { recursive: true });
for (const name of names) {
  const scenario = scenarios[name];
  if (!scenario) {
    console.error(`unknown scenario ${name}; one of: all, ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
  const started = Date.now();
  const result = await scenario();
  const record = { date: new Date().toISOString(), host: hostInfo(), duration_s: (Date.now() - started) / 1000, ...(result as object) };
  await Bun.write(`${outDir}/${date}-${name}.json`, JSON.stringify(record, null, 2) + "\n");
  console.log(`wrote ${outDir}/${date}-${name}.json`);
}

function hostInfo() {
  const os = require("node:os");
  return { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, mem_gb: Math.round(os.totalmem() / 2 ** 30), bun: Bun.version, loader: "same machine" };
}
console.log(`wrote ${await writeSummary(outDir, date)}`);
