import type { Subprocess } from "bun";
import { closedLoop, type LoadResult } from "../lib/load.ts";
import { benchPath, requireFdLimit, withFdLimit, lines, subscriberReports } from "../lib/proc.ts";
import { sized, sizedList, type Plan } from "../lib/preset.ts";
import { BENCH_USER } from "../lib/service.ts";
import { knob, knobList, latency, median, nowMs, round } from "../lib/stats.ts";
import { machineTicks, natsUrl, startCluster, type BenchCluster, type Instance } from "../lib/cluster.ts";

/** One fan-out shape: `channels` channels × `perChannel` subscribers, spread over the instances. */
interface FanoutCase {
  channels: number;
  perChannel: number;
  /** Messages per channel in a throughput run (closed loop, `fanout_senders` senders). */
  messages: number;
  /** The paced run: messages/s over all channels, and messages per channel. */
  paced_rate: number;
  paced_messages: number;
}

export interface ClusterParams {
  /** The cluster sizes compared: 1 and BENCH_CLUSTER_INSTANCES (default 3). */
  sizes: [number, number];
  send_channels: number[];
  send_concurrency: number[];
  hop_concurrency: number[];
  /** The hop is measured in short slices, the three configurations taking turns. */
  hop_slices: number;
  hop_slice_s: number;
  seconds: number;
  rounds: number;
  fanout: FanoutCase[];
  fanout_senders: number;
  fanout_procs: number;
  grace_s: number;
  lease_ttl_ms: number;
  nats_url: string;
}

/** The target: N instances on this machine give at least this share of one instance's figure. */
export const CLUSTER_TARGET = 0.8;

export function clusterPlan(): Plan<ClusterParams> {
  const many = knob("BENCH_CLUSTER_INSTANCES", 3);
  const rounds = sized("BENCH_ROUNDS", { quick: 2, full: 3 });
  const seconds = sized("BENCH_CLUSTER_SECONDS", { quick: 2, full: 3 });
  const pacedDeliveries = knob("BENCH_CLUSTER_PACED_DELIVERIES", 20_000);
  const pacedSeconds = knob("BENCH_CLUSTER_PACED_SECONDS", 3);
  const shape = (channels: number, perChannel: number, messages: number): FanoutCase => {
    const rate = Math.max(1, Math.min(knob("BENCH_CLUSTER_PACED_RATE", 100), Math.floor(pacedDeliveries / perChannel)));
    return { channels, perChannel, messages, paced_rate: rate, paced_messages: Math.max(1, Math.ceil((rate * pacedSeconds) / channels)) };
  };
  // 1 channel: ≥ 30,000 deliveries a run; 100 channels: 5 messages each (500 sends, 50,000 deliveries).
  const fanout = sizedList("BENCH_CLUSTER_FANOUT_SUBSCRIBERS", { quick: [1000], full: [1000, 10_000] }).map((n) => shape(1, n, Math.max(5, Math.round(30_000 / n))));
  const multi = process.env.BENCH_CLUSTER_FANOUT_MULTI === "0" ? 0 : knob("BENCH_CLUSTER_FANOUT_MULTI", 100);
  if (multi > 0) fanout.push(shape(multi, knob("BENCH_CLUSTER_FANOUT_MULTI_SUBSCRIBERS", 100), knob("BENCH_CLUSTER_FANOUT_MULTI_MESSAGES", 5)));
  const params: ClusterParams = {
    sizes: [1, many],
    send_channels: sizedList("BENCH_CLUSTER_SEND_CHANNELS", { quick: [1, 10], full: [1, 10, 100] }),
    send_concurrency: knobList("BENCH_CLUSTER_SEND_CONCURRENCY", [16, 64]),
    hop_concurrency: knobList("BENCH_CLUSTER_HOP_CONCURRENCY", [1, 4]),
    hop_slices: sized("BENCH_CLUSTER_HOP_SLICES", { quick: 12, full: 20 }),
    hop_slice_s: knob("BENCH_CLUSTER_HOP_SLICE_SECONDS", 0.5),
    seconds,
    rounds,
    fanout,
    fanout_senders: knob("BENCH_CLUSTER_FANOUT_SENDERS", 4),
    fanout_procs: sized("BENCH_CLUSTER_FANOUT_PROCS", { quick: 2, full: 4 }),
    grace_s: knob("BENCH_CLUSTER_GRACE_SECONDS", 15),
    lease_ttl_ms: knob("BENCH_CLUSTER_LEASE_TTL_MS", 5000),
    nats_url: natsUrl,
  };
  return { params, estimateSeconds: Math.round(estimate(params)) };
}

/** Rough, from runs on this 2-core machine: only for `--plan` and the progress lines. */
function estimate(p: ClusterParams): number {
  const maxChannels = Math.max(...p.send_channels, ...p.fanout.map((c) => c.channels));
  // Two databases, the instances (the first alone, then the others), balancing, channels, warm-up, stopping.
  const setUp = 10 + maxChannels * 0.03;
  const run = p.seconds + 0.3;
  const send = p.send_channels.length * p.send_concurrency.length * p.rounds * 2 * run;
  const hop = p.hop_concurrency.length * p.hop_slices * 3 * (p.hop_slice_s + 0.1);
  const fanout = p.fanout.reduce((sum, c) => {
    const total = c.channels * c.perChannel;
    // Loader processes started and every socket open (~2,000 handshakes/s over the instances here).
    const open = 1.5 + total / 2000;
    const saturated = open + Math.max((c.channels * c.messages) / 250, (c.channels * c.messages * c.perChannel) / 50_000);
    const paced = open + (c.channels * c.paced_messages) / c.paced_rate + 0.5;
    return sum + 2 * (p.rounds * saturated + paced);
  }, 0);
  return setUp + send + hop + fanout;
}

interface Measured extends LoadResult {
  /** Each successful request's latency (ms), for pooling slices. */
  samples: number[];
  /** Requests that reached an instance other than the channel's owner (forwarded over NATS). */
  forwarded: number;
  /** 2xx answers other than 201 (202: accepted, Matrix slow). */
  accepted_202: number;
  statuses: Record<string, number>;
  cpuMs: number;
  /** CPU (user + system) of all the cluster's instances per successful send. */
  cpu_ms_per_send: number;
  /** Busy share of the whole machine during the run (all processes, this bench and any other work). */
  machine_busy: number;
}

/**
 * `bun run bench cluster`: the service in cluster mode (CLUSTER=on, PostgreSQL, NATS) with one
 * instance and with three, on this machine. Both clusters run side by side, each on its own
 * fresh database and CLUSTER_NAME, and take turns round by round (the median round is kept):
 *  1. sends/s and latency over a grid of channels × senders, senders round-robin over the
 *     instances (with three, about two requests in three reach a non-owner and are forwarded);
 *  2. the forwarding hop: 1 channel, few senders, every request to the owner, or every request
 *     to a non-owner (and the one-instance cluster for reference), in short slices taking turns;
 *  3. fan-out: subscribers spread over the instances; a closed-loop run with a few senders
 *     (deliveries/s) and a paced run (latency from send to delivery), every frame checked
 *     (missing, duplicated) per subscriber.
 * The figure to read is the ratio N instances ÷ 1 instance (target ≥ 0.8: on two shared cores
 * more instances cannot be faster, only not much slower).
 */
export async function clusterScenario() {
  const { params } = clusterPlan();
  requireFdLimit(Math.max(...params.fanout.map((c) => c.channels * c.perChannel)), "cluster fan-out");

  // Every process started here is killed even if the bench itself is stopped (Ctrl-C), and
  // the clusters' databases are dropped then if that takes no more than a few seconds.
  const live = new Set<Subprocess>();
  const clusters: BenchCluster[] = [];
  const killAll = () => {
    for (const proc of live) if (proc.exitCode === null) proc.kill("SIGKILL");
  };
  const interrupted = async () => {
    killAll();
    await Promise.race([Promise.allSettled(clusters.map((c) => c.stop())), Bun.sleep(5000)]);
    process.exit(130);
  };
  process.on("exit", killAll);
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);

  const [oneSize, manySize] = params.sizes;
  try {
    const onSpawn = (child: { proc: Subprocess }) => live.add(child.proc);
    const setUpStarted = Date.now();
    // BENCH_CLUSTER_CPU_PROF_DIR: every instance writes a CPU profile there when it stops.
    const cpuProfDir = process.env.BENCH_CLUSTER_CPU_PROF_DIR || undefined;
    clusters.push(await startCluster(oneSize, { tag: "one", leaseTtlMs: params.lease_ttl_ms, onSpawn, cpuProfDir }));
    clusters.push(await startCluster(manySize, { tag: `n${manySize}`, leaseTtlMs: params.lease_ttl_ms, onSpawn, cpuProfDir }));
    const [one, many] = clusters as [BenchCluster, BenchCluster];
    console.log(`cluster: ${oneSize} and ${manySize} instances up and balanced in ${round((Date.now() - setUpStarted) / 1000, 1)} s (NATS ${params.nats_url})`);

    const maxChannels = Math.max(...params.send_channels, ...params.fanout.map((c) => c.channels));
    const sides = await Promise.all(
      clusters.map(async (cluster): Promise<Side> => {
        const channels: string[] = [];
        for (let i = 0; i < maxChannels; i++) channels.push(await cluster.createChannel());
        const owners = new Map<string, Instance>();
        for (const channel of channels) owners.set(channel, await cluster.ownerOf(channel));
        const shardOwners = await cluster.owners();
        return { cluster, channels, owners, shardOwners, initialOwners: shardOwners, moved: 0 };
      }),
    );
    const [a, b] = sides as [Side, Side];
    // Warm-up: every channel's actor started on its owner, every instance's code paths compiled.
    for (const side of sides) await sendLoad(side, side.channels, 8, 1, (w) => side.cluster.instances[w % side.cluster.instances.length]!);
    const warmUpMoves = await movesDuring(sides);
    for (const side of sides) side.leaders = await side.cluster.leaders();

    const phases: Record<string, number> = { set_up: elapsed(setUpStarted) };
    // 1. Sends, senders round-robin over the instances.
    let phaseStarted = Date.now();
    const send: unknown[] = [];
    for (const nChannels of params.send_channels) {
      for (const concurrency of params.send_concurrency) {
        const runs: [Measured[], Measured[]] = [[], []];
        for (let r = 0; r < params.rounds; r++) {
          // Alternating which cluster goes first, so neither always follows the other's backlog.
          for (const s of r % 2 === 0 ? [0, 1] : [1, 0]) {
            const side = sides[s]!;
            runs[s]!.push(await sendLoad(side, side.channels.slice(0, nChannels), concurrency, params.seconds, (w) => side.cluster.instances[w % side.cluster.instances.length]!));
          }
        }
        const [x, y] = [pick(runs[0]), pick(runs[1])];
        const ratio = round(y.perSecond / x.perSecond, 3);
        send.push({
          non_2xx_all_rounds: { one: errorsOf(runs[0]), many: errorsOf(runs[1]) },
          channels: nChannels,
          concurrency,
          one: summary(x),
          many: summary(y),
          ratio,
          meets_target: ratio >= CLUSTER_TARGET,
          owners_many: ownerCounts(b, b.channels.slice(0, nChannels)),
          shards_moved: await movesDuring(sides),
          rounds: { one: runs[0].map((m) => m.perSecond), many: runs[1].map((m) => m.perSecond) },
        });
        console.log(
          `cluster send ch=${nChannels} c=${concurrency}: ${oneSize} instance ${x.perSecond}/s p50 ${x.latency.p50} p99 ${x.latency.p99} | ${manySize} instances ${y.perSecond}/s p50 ${y.latency.p50} p99 ${y.latency.p99} (${pct(y.forwarded / (y.ok + y.errors))} forwarded) | ratio ${ratio}${errorsNote(x, y)}`,
        );
      }
    }

    phases.send = elapsed(phaseStarted);
    phaseStarted = Date.now();
    // 2. The forwarding hop: one channel of the N-instance cluster, every request to its owner or to a non-owner.
    const channel = b.channels[0]!;
    let owner = b.owners.get(channel)!;
    let nonOwner = b.cluster.instances.find((i) => i !== owner)!;
    const hop: unknown[] = [];
    for (const concurrency of params.hop_concurrency) {
      const configs = [
        { name: "one", side: a, to: () => a.cluster.instances[0]! },
        { name: "direct", side: b, to: () => owner },
        { name: "forwarded", side: b, to: () => nonOwner },
      ];
      // Short slices, the three configurations in turn (order rotating), pooled: a drift in the
      // machine's other load hits all three alike, which a few long rounds would not ensure.
      const slices = configs.map(() => [] as Measured[]);
      for (let r = 0; r < params.hop_slices; r++) {
        // Asked again each time: "to the owner" must stay true if a shard moved.
        owner = await b.cluster.ownerOf(channel);
        nonOwner = b.cluster.instances.find((i) => i !== owner)!;
        for (let j = 0; j < configs.length; j++) {
          const k = (r + j) % configs.length;
          const c = configs[k]!;
          slices[k]!.push(await sendLoad(c.side, [c.side.channels[0]!], concurrency, params.hop_slice_s, c.to));
        }
      }
      const [x, direct, fwd] = slices.map(pooled) as [Measured, Measured, Measured];
      const row = {
        concurrency,
        one: summary(x),
        direct: summary(direct),
        forwarded: summary(fwd),
        hop_ms_p50: round(fwd.latency.p50 - direct.latency.p50),
        hop_ms_p99: round(fwd.latency.p99 - direct.latency.p99),
        /** Throughput lost by sending to a non-owner instead of the owner, in % of the owner's. */
        hop_throughput_loss_pct: round(100 * (1 - fwd.perSecond / direct.perSecond), 1),
        /** CPU of all instances per send, forwarded minus direct: the hop's work (HTTP in, NATS out and in, reply). */
        hop_cpu_ms: round(fwd.cpu_ms_per_send - direct.cpu_ms_per_send, 3),
        ratio_direct: round(direct.perSecond / x.perSecond, 3),
        ratio_forwarded: round(fwd.perSecond / x.perSecond, 3),
        /** Per-slice sends/s, for the spread. */
        slices: Object.fromEntries(configs.map((c, k) => [c.name, slices[k]!.map((m) => m.perSecond)])),
        non_2xx_all_rounds: Object.fromEntries(configs.map((c, k) => [c.name, errorsOf(slices[k]!)])),
        shards_moved: await movesDuring(sides),
      };
      hop.push(row);
      console.log(
        `cluster hop c=${concurrency}: ${oneSize} instance ${x.perSecond}/s p50 ${x.latency.p50} | owner ${direct.perSecond}/s p50 ${direct.latency.p50} p99 ${direct.latency.p99} | non-owner ${fwd.perSecond}/s p50 ${fwd.latency.p50} p99 ${fwd.latency.p99} | hop ${signed(row.hop_ms_p50)} ms p50, ${signed(-row.hop_throughput_loss_pct)} % sends/s, ${signed(row.hop_cpu_ms)} CPU ms/send${errorsNote(x, direct, fwd)}`,
      );
    }

    phases.hop = elapsed(phaseStarted);
    phaseStarted = Date.now();
    // 3. Fan-out, subscribers spread over the instances.
    const fanout: unknown[] = [];
    for (const c of params.fanout) {
      const runs: [FanoutResult[], FanoutResult[]] = [[], []];
      for (let r = 0; r < params.rounds; r++) {
        for (const s of r % 2 === 0 ? [0, 1] : [1, 0]) {
          const result = await fanoutRun(sides[s]!, c, c.messages, 0, params, live);
          runs[s]!.push(result);
          console.log(`cluster fanout ${label(c)} ${sides[s]!.cluster.instances.length} instance(s): ${result.deliveries_per_s} deliveries/s, p50 ${result.p50_ms} p99 ${result.p99_ms} ms, sends ${result.sends_per_s}/s${checkNote(result)}`);
        }
      }
      const paced: FanoutResult[] = [];
      for (const side of sides) {
        const result = await fanoutRun(side, c, c.paced_messages, c.paced_rate, params, live);
        paced.push(result);
        console.log(`cluster fanout paced ${c.paced_rate}/s ${label(c)} ${side.cluster.instances.length} instance(s): ${result.deliveries_per_s} deliveries/s, p50 ${result.p50_ms} p99 ${result.p99_ms} ms${checkNote(result)}`);
      }
      const pickF = (rs: FanoutResult[]) => {
        const m = median(rs.map((x) => x.deliveries_per_s));
        return { ...rs.find((x) => x.deliveries_per_s === m)!, rounds: rs.map((x) => x.deliveries_per_s) };
      };
      const [x, y] = [pickF(runs[0]), pickF(runs[1])];
      const ratio = round(y.deliveries_per_s / x.deliveries_per_s, 3);
      fanout.push({
        channels: c.channels,
        subscribers_per_channel: c.perChannel,
        subscribers: c.channels * c.perChannel,
        messages: c.channels * c.messages,
        one: x,
        many: y,
        ratio,
        meets_target: ratio >= CLUSTER_TARGET,
        paced: { rate_per_s: c.paced_rate, messages: c.channels * c.paced_messages, one: paced[0], many: paced[1], ratio_p50: round(paced[1]!.p50_ms / paced[0]!.p50_ms, 3) },
        shards_moved: await movesDuring(sides),
        // Every run's checks, not only the median's.
        checks: {
          one: sumChecks([...runs[0], paced[0]!]),
          many: sumChecks([...runs[1], paced[1]!]),
        },
      });
    }

    phases.fanout = elapsed(phaseStarted);
    // Shards that changed hands during the run: a move hands a channel's actor over (drain, fence claim) in the middle of a cell.
    const moved = sides.map((side) => side.moved);
    const correctness = {
      one: { warnings: one.warnings(), shards_moved: moved[0], shards_moved_in_warm_up: warmUpMoves[0] },
      many: { warnings: many.warnings(), shards_moved: moved[1], shards_moved_in_warm_up: warmUpMoves[1] },
    };
    console.log(`cluster: shards moved during the run: ${moved.join(" / ")}; warnings logged: ${sides.map((s) => Object.values(s.cluster.warnings()).reduce((n, w) => n + w.count, 0)).join(" / ")}`);
    return {
      scenario: "cluster",
      params,
      clusters: sides.map((s) => ({
        instances: s.cluster.instances.map((i) => ({ name: i.name, incarnation: i.incarnation, shards: Object.values(s.initialOwners).filter((o) => o === i.incarnation).length })),
        leaders: s.leaders,
      })),
      hop_channel: { owner: owner.name, non_owner: nonOwner.name },
      send,
      hop,
      fanout,
      correctness,
      phase_seconds: phases,
    };
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    killAll();
    process.off("exit", killAll);
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }
}

interface Side {
  cluster: BenchCluster;
  channels: string[];
  /** Each channel's owner, asked again after a shard moved (for the forwarded counts). */
  owners: Map<string, Instance>;
  /** Who owned each shard at the last look, and at the start. */
  shardOwners: Record<string, string>;
  initialOwners: Record<string, string>;
  moved: number;
  leaders?: Record<string, string[]>;
}

const errorsOf = (rs: Measured[]) => rs.reduce((n, r) => n + r.errors, 0);
const pick = (rs: Measured[]) => rs.find((r) => r.perSecond === median(rs.map((x) => x.perSecond)))!;
const elapsed = (since: number) => round((Date.now() - since) / 1000, 1);
const signed = (x: number) => (x >= 0 ? `+${x}` : `−${-x}`);

/** Slices of one configuration as one measurement: all their requests, time and CPU together. */
function pooled(slices: Measured[]): Measured {
  const add = (f: (m: Measured) => number) => slices.reduce((n, m) => n + f(m), 0);
  const samples = slices.flatMap((m) => m.samples);
  const seconds = add((m) => m.seconds);
  const ok = add((m) => m.ok);
  const statuses: Record<string, number> = {};
  for (const m of slices) for (const [k, v] of Object.entries(m.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  return {
    ok,
    errors: add((m) => m.errors),
    seconds,
    perSecond: Math.round(ok / seconds),
    latency: latency(samples),
    firstError: slices.find((m) => m.firstError)?.firstError,
    samples,
    cpuMs: add((m) => m.cpuMs),
    forwarded: add((m) => m.forwarded),
    accepted_202: add((m) => m.accepted_202),
    statuses,
    cpu_ms_per_send: round(add((m) => m.cpuMs) / Math.max(1, ok), 3),
    machine_busy: round(add((m) => m.machine_busy * m.seconds) / seconds, 3),
  };
}

const pct = (x: number) => `${Math.round(100 * x)} %`;

const summary = (r: Measured) => ({
  per_second: r.perSecond,
  ok: r.ok,
  errors: r.errors,
  accepted_202: r.accepted_202,
  statuses: r.statuses,
  p50_ms: r.latency.p50,
  p99_ms: r.latency.p99,
  forwarded_share: round(r.forwarded / Math.max(1, r.ok + r.errors), 3),
  cpu_ms_per_send: r.cpu_ms_per_send,
  machine_busy: r.machine_busy,
  first_error: r.firstError,
});

function errorsNote(...rs: Measured[]) {
  const errors = rs.reduce((n, r) => n + r.errors, 0);
  return errors ? ` | NON-2XX ${errors} (${rs.map((r) => r.firstError).filter(Boolean)[0]})` : "";
}

function ownerCounts(side: Side, channels: string[]) {
  const counts: Record<string, number> = {};
  for (const ch of channels) counts[side.owners.get(ch)!.name] = (counts[side.owners.get(ch)!.name] ?? 0) + 1;
  return counts;
}

/**
 * Shards of each cluster that changed hands since the last look (the cell just measured); the
 * channels' owners are asked again then. Returns [one, many].
 */
async function movesDuring(sides: Side[]): Promise<number[]> {
  return Promise.all(
    sides.map(async (side) => {
      const now = await side.cluster.owners();
      const moved = Object.keys(side.shardOwners).filter((shard) => side.shardOwners[shard] !== now[shard]).length;
      side.shardOwners = now;
      side.moved += moved;
      if (moved > 0) for (const channel of side.channels) side.owners.set(channel, await side.cluster.ownerOf(channel));
      return moved;
    }),
  );
}

/** Closed-loop sends to `channels` (request i of worker w to channel (w + i) mod n), worker w's requests to instance `to(w)`. */
async function sendLoad(side: Side, channels: string[], concurrency: number, seconds: number, to: (worker: number) => Instance): Promise<Measured> {
  const headers = { "content-type": "application/json", "x-user-id": BENCH_USER };
  let forwarded = 0;
  let accepted202 = 0;
  const statuses: Record<string, number> = {};
  const cpu0 = side.cluster.cpuMs();
  const m0 = machineTicks();
  const samples: number[] = [];
  const result = await closedLoop(concurrency, { seconds }, async (w, i) => {
    const channel = channels[(w + i) % channels.length]!;
    const instance = to(w);
    if (side.owners.get(channel) !== instance) forwarded++;
    const t0 = nowMs();
    const res = await fetch(`${instance.url}/api/messaging/channels/${channel}/messages`, { method: "POST", headers, body: JSON.stringify({ text: `bench message ${i}` }) });
    await res.arrayBuffer();
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    if (res.status >= 200 && res.status < 300) {
      samples.push(nowMs() - t0);
      if (res.status !== 201) accepted202++;
      return true;
    }
    return `${res.status}`;
  });
  const cpu = side.cluster.cpuMs() - cpu0;
  const m1 = machineTicks();
  return {
    ...result,
    samples,
    cpuMs: cpu,
    forwarded,
    accepted_202: accepted202,
    statuses,
    cpu_ms_per_send: round(cpu / Math.max(1, result.ok), 3),
    machine_busy: round((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total), 3),
  };
}

interface ClientReport {
  deliveries: number;
  lastDelivery: number;
  latency: { n: number; p50: number; p99: number; max: number };
  complete: boolean;
  missing: number;
  duplicated: number;
  updated: number;
  short: number;
}

interface FanoutResult {
  deliveries: number;
  deliveries_per_s: number;
  sends_per_s: number;
  p50_ms: number;
  p99_ms: number;
  complete: boolean;
  /** Frames a subscriber should have had and did not, summed over the subscribers. */
  missing: number;
  /** message.created frames a subscriber got again (or out of order). */
  duplicated: number;
  /** message.updated frames with a bench message: a relayed frame that came after its repair from the index. */
  updated: number;
  /** Subscribers that got fewer frames than sent to their channel. */
  subscribers_short: number;
  send_errors: number;
  send_statuses: Record<string, number>;
  cpu_ms_per_1000_deliveries: number;
  machine_busy: number;
}

const label = (c: FanoutCase) => `${c.channels}ch×${c.perChannel}`;

function checkNote(r: FanoutResult) {
  const bad = r.missing || r.duplicated || r.send_errors || r.updated;
  return bad ? ` | CHECK missing ${r.missing} duplicated ${r.duplicated} updated ${r.updated} send errors ${r.send_errors}` : " | every frame once";
}

function sumChecks(rs: FanoutResult[]) {
  const sum = (k: "missing" | "duplicated" | "updated" | "subscribers_short" | "send_errors") => rs.reduce((n, r) => n + r[k], 0);
  return { runs: rs.length, missing: sum("missing"), duplicated: sum("duplicated"), updated: sum("updated"), subscribers_short: sum("subscribers_short"), send_errors: sum("send_errors") };
}

/**
 * One fan-out run: subscriber j on channel j mod C at instance ⌊(j mod C·N) / C⌋ (so each
 * channel's subscribers, and all subscribers, are spread evenly over the N instances), split
 * over loader processes; `perChannel` messages to each channel, message i to channel i mod C,
 * closed-loop with a few senders (sender k to instance k mod N) or paced at `ratePerS`
 * (message i to instance i mod N).
 */
async function fanoutRun(side: Side, c: FanoutCase, perChannel: number, ratePerS: number, p: ClusterParams, live: Set<Subprocess>): Promise<FanoutResult> {
  const instances = side.cluster.instances;
  const channels = side.channels.slice(0, c.channels);
  const urls = Array.from({ length: c.channels * instances.length }, (_, u) => {
    const instance = instances[Math.floor(u / c.channels) % instances.length]!;
    return `${instance.url.replace("http", "ws")}/ws/messaging/${channels[u % c.channels]}?user_id=${BENCH_USER}`;
  }).join(",");
  const total = c.channels * c.perChannel;
  const procs = Math.max(1, Math.min(p.fanout_procs, total));
  const perProc = Array.from({ length: procs }, (_, i) => Math.floor(total / procs) + (i < total % procs ? 1 : 0));
  const firsts = perProc.map((_, i) => perProc.slice(0, i).reduce((x, y) => x + y, 0));
  const clients = perProc.map((n, i) =>
    Bun.spawn(withFdLimit(["bun", benchPath("clients/subscribers.ts"), "ws", urls, String(n), String(perChannel), "600000", String(firsts[i]), "seq"]), {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    }),
  );
  for (const client of clients) live.add(client);
  try {
    const readers = clients.map((client) => lines(client.stdout));
    for (const r of readers) {
      const first = await r.next();
      if (first.done || !JSON.parse(first.value).ready) throw new Error("cluster fan-out: subscribers did not open");
    }
    const headers = { "content-type": "application/json", "x-user-id": BENCH_USER };
    const messages = perChannel * c.channels;
    let sendErrors = 0;
    const statuses: Record<string, number> = {};
    const cpu0 = side.cluster.cpuMs();
    const m0 = machineTicks();
    const firstSend = nowMs();
    const publishOne = async (i: number, instance: Instance) => {
      try {
        const res = await fetch(`${instance.url}/api/messaging/channels/${channels[i % channels.length]}/messages`, {
          method: "POST",
          headers,
          body: JSON.stringify({ text: `fanout ${nowMs().toFixed(3)}` }),
        });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status < 200 || res.status >= 300) sendErrors++;
      } catch {
        statuses.network = (statuses.network ?? 0) + 1;
        sendErrors++;
      }
    };
    if (ratePerS > 0) {
      const sends: Promise<void>[] = [];
      for (let i = 0; i < messages; i++) {
        const due = firstSend + (i * 1000) / ratePerS;
        if (due > nowMs()) await Bun.sleep(due - nowMs());
        sends.push(publishOne(i, instances[i % instances.length]!));
      }
      await Promise.all(sends);
    } else {
      let next = 0;
      await Promise.all(
        Array.from({ length: p.fanout_senders }, async (_, k) => {
          while (next < messages) await publishOne(next++, instances[k % instances.length]!);
        }),
      );
    }
    const lastSendDone = nowMs();
    const reports = await subscriberReports<ClientReport>(clients, readers, p.grace_s * 1000, "cluster fan-out");
    const cpu = side.cluster.cpuMs() - cpu0;
    const m1 = machineTicks();
    await Promise.all(clients.map((client) => client.exited));
    const deliveries = reports.reduce((n, x) => n + x.deliveries, 0);
    const last = Math.max(...reports.map((x) => x.lastDelivery));
    const sum = (k: "missing" | "duplicated" | "updated" | "short") => reports.reduce((n, x) => n + x[k], 0);
    return {
      deliveries,
      deliveries_per_s: Math.round(deliveries / ((last - firstSend) / 1000)),
      sends_per_s: Math.round(messages / ((lastSendDone - firstSend) / 1000)),
      // Per-process percentiles merged conservatively: the median process's p50, the worst process's p99.
      p50_ms: round(median(reports.map((x) => x.latency.p50))),
      p99_ms: Math.max(...reports.map((x) => x.latency.p99)),
      complete: reports.every((x) => x.complete),
      missing: sum("missing"),
      duplicated: sum("duplicated"),
      updated: sum("updated"),
      subscribers_short: sum("short"),
      send_errors: sendErrors,
      send_statuses: statuses,
      cpu_ms_per_1000_deliveries: round((1000 * cpu) / Math.max(1, deliveries), 2),
      machine_busy: round((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total), 3),
    };
  } finally {
    for (const client of clients) {
      client.kill();
      live.delete(client);
    }
  }
}
