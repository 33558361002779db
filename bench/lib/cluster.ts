import { readFileSync } from "node:fs";
import { freePort, spawnServer, type Child } from "./proc.ts";
import { BENCH_USER, freshDatabase, POLICY_LIMITS_OFF } from "./service.ts";

export const natsUrl = process.env.NATS_URL || "nats://127.0.0.1:4222";

export interface Instance extends Child {
  name: string;
  /** `<INSTANCE_ID>-<8 hex>`: the owner /internal/cluster names. */
  incarnation: string;
  log: string;
}

interface ClusterView {
  incarnation: string;
  members: number;
  shards: number[];
  leaders: string[];
  owners: Record<string, string>;
  channel?: { id: string; shard: number; owner: string | null };
}

export interface BenchCluster {
  name: string;
  instances: Instance[];
  createChannel(): Promise<string>;
  /** The instance that owns the channel, once every instance sees the same one. */
  ownerOf(channelId: string): Promise<Instance>;
  /** Who owns each shard, as the first instance sees it (for spotting a move during a run). */
  owners(): Promise<Record<string, string>>;
  /** The leader roles (sync, outbox) each instance holds. */
  leaders(): Promise<Record<string, string[]>>;
  /** CPU time (user + system) of all instances so far, in ms. */
  cpuMs(): number;
  /** Log lines at warn or above per instance since the cluster was balanced: how many, and their distinct messages (up to 5). */
  warnings(): Record<string, { count: number; messages: string[] }>;
  stop(): Promise<void>;
}

const SHARDS = 64;
const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** utime + stime of a process from /proc (Linux), in ms; NaN once it is gone. */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** The machine's busy and total jiffies (all cores) from /proc/stat: busy ÷ total between two reads is its load. */
export function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3]! - cpu[4]!, total };
}

/**
 * `n` instances of the service (`bun src/main.ts`) in cluster mode, as users run them: one
 * fresh PostgreSQL database, the NATS at NATS_URL, a CLUSTER_NAME of their own (so other
 * clusters on the same NATS are not involved), the local Matrix backend, policy limits off.
 * The first instance starts alone (it runs the migrations), then the others together; it
 * resolves once every instance is ready and all agree on who owns each of the 64 shards, each
 * holding its fair share. Whatever fails, what was started is stopped.
 */
export async function startCluster(
  n: number,
  opts: { tag: string; leaseTtlMs: number; ownerWaitMs?: number; onSpawn?: (child: Child) => void; /** Each instance writes a CPU profile here when it stops. */ cpuProfDir?: string },
): Promise<BenchCluster> {
  const db = await freshDatabase(`daarion_bench_cluster${n}`);
  const name = `bench${n}_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  const instances: Instance[] = [];
  const startOne = async (i: number): Promise<Instance> => {
    const port = await freePort();
    const id = `${opts.tag}-${i + 1}`;
    const profile = opts.cpuProfDir ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${opts.cpuProfDir}/${id}`] : [];
    const child = await spawnServer(["bun", ...profile, "src/main.ts"], {
      name: `cluster-${id}`,
      port,
      readyPath: "/ready",
      timeoutMs: 60_000,
      env: {
        PORT: String(port),
        HOST: "127.0.0.1",
        CLUSTER: "on",
        CLUSTER_NAME: name,
        INSTANCE_ID: id,
        CLUSTER_LEASE_TTL_MS: String(opts.leaseTtlMs),
        CLUSTER_OWNER_WAIT_MS: String(opts.ownerWaitMs ?? 8000),
        DATABASE_URL: db.url,
        NATS_URL: natsUrl,
        DATA_DIR: `/tmp/bench-data-${port}`,
        // Warnings (a relay's hole) are counted after the run; nothing else is logged unless asked (info: a line per request).
        LOG_LEVEL: process.env.BENCH_CLUSTER_LOG_LEVEL || "warn",
        MATRIX_HOMESERVER_URL: "",
        ...POLICY_LIMITS_OFF,
      },
    });
    opts.onSpawn?.(child);
    const instance = { ...child, name: id, incarnation: "", log: `/tmp/bench-cluster-${id}-${port}.log` };
    instances.push(instance);
    instance.incarnation = (await clusterView(instance)).incarnation;
    return instance;
  };
  const stop = async () => {
    await Promise.all(instances.map((i) => i.stop()));
    await db.drop();
  };
  try {
    await startOne(0);
    const rest = await Promise.allSettled(Array.from({ length: n - 1 }, (_, i) => startOne(i + 1)));
    const failed = rest.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    instances.sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
    await balanced(instances, n, 90_000);
  } catch (err) {
    await stop();
    throw err;
  }

  // What start-up warns about (dev auth, an open /internal) is not counted.
  const startWarnings = new Map(instances.map((i) => [i.name, warnLines(i).length]));
  const headers = { "content-type": "application/json", "x-user-id": BENCH_USER };
  const view = clusterView;
  return {
    name,
    instances,
    stop,
    async createChannel() {
      const res = await fetch(`${instances[0]!.url}/api/messaging/channels`, {
        method: "POST",
        headers,
        body: JSON.stringify({ slug: `b-${crypto.randomUUID().slice(0, 12)}`, name: "Bench", microdao_id: "microdao:bench", visibility: "public" }),
      });
      if (res.status !== 201) throw new Error(`create channel: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { id: string }).id;
    },
    async ownerOf(channelId) {
      // Bounded: while a shard changes hands the instances may briefly disagree.
      const deadline = Date.now() + 15_000;
      for (;;) {
        const owners = await Promise.all(instances.map(async (i) => (await view(i, `?channel_id=${channelId}`)).channel?.owner ?? null));
        const owner = instances.find((i) => i.incarnation === owners[0]);
        if (owner && owners.every((o) => o === owners[0])) return owner;
        if (Date.now() > deadline) throw new Error(`channel ${channelId}: the instances disagree on its owner (${owners.join(", ")})`);
        await Bun.sleep(100);
      }
    },
    async leaders() {
      return Object.fromEntries(await Promise.all(instances.map(async (i) => [i.name, (await view(i)).leaders] as const)));
    },
    async owners() {
      return (await view(instances[0]!)).owners;
    },
    cpuMs: () => instances.reduce((sum, i) => sum + processCpuMs(i.proc.pid), 0),
    warnings() {
      const out: Record<string, { count: number; messages: string[] }> = {};
      for (const i of instances) {
        const lines = warnLines(i).slice(startWarnings.get(i.name) ?? 0);
        out[i.name] = { count: lines.length, messages: [...new Set(lines.map((l) => String((JSON.parse(l) as { msg?: string }).msg)))].slice(0, 5) };
      }
      return out;
    },
  };
}

async function clusterView(instance: { url: string }, query = ""): Promise<ClusterView> {
  const res = await fetch(`${instance.url}/internal/cluster${query}`);
  if (res.status !== 200) throw new Error(`GET /internal/cluster${query}: ${res.status} ${await res.text()}`);
  return (await res.json()) as ClusterView;
}

function warnLines(instance: Instance): string[] {
  let text = "";
  try {
    text = readFileSync(instance.log, "utf8");
  } catch {}
  return text.split("\n").filter((line) => /^\{"level":[4-6]\d/.test(line));
}

/** Waits (bounded) until every instance sees n members and the same owner for all 64 shards, each owning at most its fair share. */
async function balanced(instances: Instance[], n: number, timeoutMs: number): Promise<void> {
  const fair = Math.ceil(SHARDS / n);
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const views = await Promise.all(instances.map((i) => clusterView(i)));
    const owners = views.map((v) => JSON.stringify(Object.entries(v.owners).sort(([a], [b]) => Number(a) - Number(b))));
    const ok =
      views.every((v) => v.members === n && v.shards.length <= fair && Object.keys(v.owners).length === SHARDS) &&
      owners.every((o) => o === owners[0]) &&
      views.reduce((a, v) => a + v.shards.length, 0) === SHARDS;
    if (ok) return;
    last = views.map((v) => `${v.incarnation}: ${v.members} members, ${v.shards.length} shards, ${Object.keys(v.owners).length} owned`).join("; ");
    if (Date.now() > deadline) throw new Error(`cluster of ${n} not balanced after ${timeoutMs} ms: ${last}`);
    await Bun.sleep(200);
  }
}
