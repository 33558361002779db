import { benchPath, freePort, requireFdLimit, spawnServer, withFdLimit, type Child, lines, subscriberReports } from "../lib/proc.ts";
import { sized, sizedList, type Plan } from "../lib/preset.ts";
import { BENCH_USER, startService } from "../lib/service.ts";
import { knob, median, nowMs, round } from "../lib/stats.ts";

interface Target {
  name: string;
  kind: "ws" | "socketio";
  /** n channels of this target: ids the service created, names for the baselines. */
  channels(n: number): Promise<string[]>;
  subscribeUrl(channel: string): string;
  publish(channel: string, text: string): Promise<Response>;
}

interface ClientReport {
  deliveries: number;
  lastDelivery: number;
  latency: { n: number; p50: number; p99: number; max: number };
  complete: boolean;
}

/** One fan-out shape: `channels` channels with `perChannel` subscribers each. */
interface Case {
  channels: number;
  perChannel: number;
  /** Messages sent to each channel in a throughput run. */
  messages: number;
  rounds: number;
}

export interface FanoutParams {
  cases: Case[];
  rounds: number;
  big_rounds: number;
  procs: number;
  senders: number;
  paced_max_rate: number;
  paced_deliveries_per_s: number;
  paced_seconds: number;
  grace_s: number;
}

/** Messages per throughput run at most, whatever the shape. */
const MAX_SENDS = 1000;
/** A case this large (total subscribers) counts as big: fewer rounds, so the full preset stays bounded. */
const BIG = 5000;

export function fanoutPlan(): Plan<FanoutParams> {
  const sizes = sizedList("BENCH_FANOUT_SUBSCRIBERS", { quick: [100, 1000], full: [100, 1000, 10_000] });
  // BENCH_FANOUT_MULTI_CHANNELS=0 leaves the many-channels case out.
  const multiChannels = process.env.BENCH_FANOUT_MULTI_CHANNELS === "0" ? 0 : sized("BENCH_FANOUT_MULTI_CHANNELS", { quick: 10, full: 100 });
  const multiPerChannel = knob("BENCH_FANOUT_MULTI_SUBSCRIBERS", 100);
  const rounds = sized("BENCH_ROUNDS", { quick: 2, full: 3 });
  const bigRounds = Math.min(rounds, sized("BENCH_FANOUT_BIG_ROUNDS", { quick: 1, full: 2 }));
  const roundsFor = (total: number) => (total >= BIG ? bigRounds : rounds);
  // Enough messages that a run lasts longer than its noise (≥ 20,000 deliveries, ≥ 20 per
  // channel with one channel, ≥ 5 with many), but no more than MAX_SENDS per run: the service
  // takes them at ~200/s here.
  const messagesPerChannel = (channels: number, subscribersPerChannel: number, floor: number, deliveries: number) =>
    Math.max(1, Math.min(Math.floor(MAX_SENDS / channels), Math.max(floor, Math.round(deliveries / (channels * subscribersPerChannel)))));
  const cases: Case[] = sizes.map((n) => ({ channels: 1, perChannel: n, messages: knob(`BENCH_FANOUT_MESSAGES_${n}`, messagesPerChannel(1, n, 20, 20_000)), rounds: roundsFor(n) }));
  if (multiChannels > 0) {
    const total = multiChannels * multiPerChannel;
    const messages = knob("BENCH_FANOUT_MULTI_MESSAGES", messagesPerChannel(multiChannels, multiPerChannel, 5, 50_000));
    cases.push({ channels: multiChannels, perChannel: multiPerChannel, messages, rounds: roundsFor(total) });
  }
  const params: FanoutParams = {
    cases,
    rounds,
    big_rounds: bigRounds,
    procs: sized("BENCH_FANOUT_CLIENT_PROCS", { quick: 2, full: 4 }),
    senders: knob("BENCH_FANOUT_SENDERS", 4),
    paced_max_rate: knob("BENCH_FANOUT_PACED_RATE", 20),
    paced_deliveries_per_s: knob("BENCH_FANOUT_PACED_DELIVERIES", 50_000),
    paced_seconds: knob("BENCH_FANOUT_PACED_SECONDS", 3),
    grace_s: knob("BENCH_FANOUT_GRACE_SECONDS", 30),
  };
  return { params, estimateSeconds: Math.round(10 + cases.reduce((s, c) => s + caseSeconds(c, params), 0)) };
}

/**
 * Rough speeds of the four targets on this 2-core machine with the loaders beside them:
 * handshakes/s, sends/s with 4 senders, deliveries/s. Only for the time estimate.
 */
const SPEEDS = [
  { opens: 1000, sends: 200, deliveries: 50_000 }, // service
  { opens: 5000, sends: 3000, deliveries: 150_000 }, // bun-pubsub
  { opens: 2000, sends: 1500, deliveries: 40_000 }, // node-ws
  { opens: 1500, sends: 700, deliveries: 20_000 }, // socketio
];

function caseSeconds(c: Case, p: FanoutParams) {
  const total = c.channels * c.perChannel;
  const paced = pacedShape(c, p);
  return SPEEDS.reduce((sum, speed) => {
    const setUp = 0.8 + total / speed.opens;
    const run = setUp + Math.max((c.channels * c.messages) / speed.sends, (c.channels * c.messages * c.perChannel) / speed.deliveries);
    // Paced deliveries keep up with the sends; only the last ones drain after the schedule.
    const pacedRun = setUp + paced.messages / paced.rate + 0.5;
    return sum + c.rounds * run + pacedRun;
  }, 0);
}

/**
 * The paced pass's send schedule for a case: a rate every target sustains (at most
 * paced_max_rate messages/s, at most paced_deliveries_per_s deliveries/s so the loaders keep
 * up), for paced_seconds, at least one message per channel, the same count on every channel.
 */
function pacedShape(c: Case, p: FanoutParams) {
  const rate = Math.max(1, Math.min(p.paced_max_rate, Math.floor(p.paced_deliveries_per_s / c.perChannel)));
  const perChannel = Math.max(1, Math.ceil((rate * p.paced_seconds) / c.channels));
  return { rate, perChannel, messages: perChannel * c.channels };
}

/**
 * b) Fan-out: one channel with N subscribers, and C channels with S subscribers each. Each
 * target (the service, raw Bun pub/sub, Node ws, Socket.IO on Node) gets the same subscriber
 * processes and the same messages, spread round-robin over the channels and sent as fast as the
 * target accepts them with a few concurrent senders; the targets take turns within each round.
 * deliveries/s = frames received by all subscribers / (last delivery − first send).
 */
export async function fanoutScenario() {
  const { params } = fanoutPlan();
  const { cases } = params;
  requireFdLimit(Math.max(...cases.map((c) => c.channels * c.perChannel)), "fan-out");

  const service = await startService();
  const children: Child[] = [service];
  const serviceChannels: string[] = [];
  const targets: Target[] = [
    {
      name: "service",
      kind: "ws",
      async channels(n) {
        while (serviceChannels.length < n) serviceChannels.push(await service.createChannel());
        return serviceChannels.slice(0, n);
      },
      subscribeUrl: (channel) => `${service.url.replace("http", "ws")}/ws/messaging/${channel}?user_id=${BENCH_USER}`,
      publish: (channel, text) => service.send(channel, text),
    },
  ];
  for (const [name, cmd, kind] of [
    ["bun-pubsub", ["bun", benchPath("servers/bun-pubsub.ts")], "ws"],
    ["node-ws", ["node", benchPath("servers/node-ws.mjs")], "ws"],
    ["socketio", ["node", benchPath("servers/socketio.mjs")], "socketio"],
  ] as const) {
    const port = await freePort();
    const child = await spawnServer([...cmd], { name, port, env: { PORT: String(port) }, readyPath: "/" });
    children.push(child);
    targets.push({
      name,
      kind,
      channels: async (n) => Array.from({ length: n }, (_, i) => `c${i}`),
      subscribeUrl: (channel) => (kind === "socketio" ? `${child.url}?channel=${channel}` : `${child.url.replace("http", "ws")}/ws?channel=${channel}`),
      publish: (channel, text) =>
        fetch(`${child.url}/publish`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ channel, text }) }),
    });
  }

  const rows: unknown[] = [];
  const paced: unknown[] = [];
  try {
    for (const c of cases) {
      const byTarget = new Map<string, ReturnType<typeof summarize>[]>();
      for (let r = 0; r < c.rounds; r++) {
        for (const target of targets) {
          const result = summarize(await runOnce(target, c, c.messages, params));
          byTarget.set(target.name, [...(byTarget.get(target.name) ?? []), result]);
          console.log(
            `fanout ${label(c)} ${target.name}: ${result.deliveries_per_s} deliveries/s, p50 ${result.p50_ms} p99 ${result.p99_ms} ms, sends ${result.sends_per_s}/s${result.complete ? "" : " INCOMPLETE"}`,
          );
        }
      }
      const med = Object.fromEntries(
        [...byTarget].map(([name, rs]) => {
          const m = median(rs.map((x) => x.deliveries_per_s));
          return [name, { ...rs.find((x) => x.deliveries_per_s === m)!, rounds: rs.map((x) => x.deliveries_per_s) }];
        }),
      );
      const svc = med.service!.deliveries_per_s;
      rows.push({
        channels: c.channels,
        subscribers_per_channel: c.perChannel,
        subscribers: c.channels * c.perChannel,
        messages_per_channel: c.messages,
        messages: c.messages * c.channels,
        results: med,
        ratio_vs_bun: round(svc / med["bun-pubsub"]!.deliveries_per_s, 3),
        ratio_vs_node_ws: round(svc / med["node-ws"]!.deliveries_per_s, 3),
        ratio_vs_socketio: round(svc / med.socketio!.deliveries_per_s, 3),
      });
    }
    // Second pass: every target on the same, sustainable send schedule. deliveries/s is then
    // the same for all that keep up; the p50/p99 from send to delivery compares the fan-out paths.
    for (const c of cases) {
      const shape = pacedShape(c, params);
      const results: Record<string, ReturnType<typeof summarize>> = {};
      for (const target of targets) {
        const result = summarize(await runOnce(target, c, shape.perChannel, params, shape.rate));
        results[target.name] = result;
        console.log(`fanout paced ${shape.rate}/s ${label(c)} ${target.name}: p50 ${result.p50_ms} p99 ${result.p99_ms} ms${result.complete ? "" : " INCOMPLETE"}`);
      }
      paced.push({
        channels: c.channels,
        subscribers_per_channel: c.perChannel,
        subscribers: c.channels * c.perChannel,
        rate_per_s: shape.rate,
        messages: shape.messages,
        results,
      });
    }
  } finally {
    for (const child of children) await child.stop();
  }
  return { scenario: "fanout", params, rows, paced };
}

const label = (c: Case) => (c.channels === 1 ? `n=${c.perChannel}` : `${c.channels}ch×${c.perChannel}`);

function summarize(r: { reports: ClientReport[]; firstSend: number; lastSendDone: number; messages: number }) {
  const deliveries = r.reports.reduce((a, x) => a + x.deliveries, 0);
  const last = Math.max(...r.reports.map((x) => x.lastDelivery));
  const seconds = (last - r.firstSend) / 1000;
  // Per-process percentiles are merged conservatively: the worst process's p99.
  return {
    deliveries,
    deliveries_per_s: Math.round(deliveries / seconds),
    sends_per_s: Math.round(r.messages / ((r.lastSendDone - r.firstSend) / 1000)),
    p50_ms: round(median(r.reports.map((x) => x.latency.p50))),
    p99_ms: Math.max(...r.reports.map((x) => x.latency.p99)),
    complete: r.reports.every((x) => x.complete),
  };
}

/**
 * One run: the case's subscribers split over `procs` loader processes, `perChannel` messages
 * sent to each channel (message i to channel i mod C), closed-loop or at `ratePerS`.
 */
async function runOnce(target: Target, c: Case, perChannel: number, p: FanoutParams, ratePerS = 0) {
  const channels = await target.channels(c.channels);
  const urls = channels.map((ch) => target.subscribeUrl(ch)).join(",");
  const total = c.channels * c.perChannel;
  const procs = Math.max(1, Math.min(p.procs, total));
  const perProc = Array.from({ length: procs }, (_, i) => Math.floor(total / procs) + (i < total % procs ? 1 : 0));
  const firsts = perProc.map((_, i) => perProc.slice(0, i).reduce((a, b) => a + b, 0));
  const clients = perProc.map((n, i) =>
    Bun.spawn(withFdLimit(["bun", benchPath("clients/subscribers.ts"), target.kind, urls, String(n), String(perChannel), "600000", String(firsts[i])]), {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    }),
  );
  try {
    const readers = clients.map((client) => lines(client.stdout));
    for (const r of readers) {
      const first = await r.next();
      if (first.done || !JSON.parse(first.value).ready) throw new Error(`${target.name}: subscribers did not open`);
    }
    const messages = perChannel * c.channels;
    const firstSend = nowMs();
    const publishOne = async (i: number) => {
      const res = await target.publish(channels[i % channels.length]!, `fanout ${nowMs().toFixed(3)}`);
      await res.arrayBuffer();
      if (res.status !== 201 && res.status !== 202) throw new Error(`${target.name}: publish answered ${res.status}`);
    };
    if (ratePerS > 0) {
      // Paced: the same send schedule for every target, so latency compares fan-out alone.
      const sends: Promise<void>[] = [];
      for (let i = 0; i < messages; i++) {
        const due = firstSend + (i * 1000) / ratePerS;
        if (due > nowMs()) await Bun.sleep(due - nowMs());
        sends.push(publishOne(i));
      }
      await Promise.all(sends);
    } else {
      let next = 0;
      await Promise.all(
        Array.from({ length: p.senders }, async () => {
          while (next < messages) await publishOne(next++);
        }),
      );
    }
    const lastSendDone = nowMs();
    const reports = await subscriberReports<ClientReport>(clients, readers, p.grace_s * 1000, target.name);
    await Promise.all(clients.map((client) => client.exited));
    return { reports, firstSend, lastSendDone, messages };
  } finally {
    for (const client of clients) client.kill();
  }
}
