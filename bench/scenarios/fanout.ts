import { benchPath, freePort, spawnServer, type Child } from "../lib/proc.ts";
import { BENCH_USER, startService } from "../lib/service.ts";
import { knob, knobList, median, nowMs, round } from "../lib/stats.ts";

interface Target {
  name: string;
  kind: "ws" | "socketio";
  subscribeUrl: string;
  publish(text: string): Promise<Response>;
}

interface ClientReport {
  deliveries: number;
  lastDelivery: number;
  latency: { n: number; p50: number; p99: number; max: number };
  complete: boolean;
}

/**
 * b) One channel, N subscribers. Each target (the service, raw Bun pub/sub, Node ws,
 * Socket.IO on Node) gets the same subscriber processes and the same messages, sent as fast
 * as the target accepts them with a few concurrent senders; the targets take turns within each
 * round. deliveries/s = frames received by all subscribers / (last delivery − first send).
 */
export async function fanoutScenario() {
  const sizes = knobList("BENCH_FANOUT_SUBSCRIBERS", [100, 1000]);
  const messagesFor = (n: number) => knob(`BENCH_FANOUT_MESSAGES_${n}`, Math.max(20, Math.round(20_000 / n)));
  const rounds = knob("BENCH_ROUNDS", 2);
  const procs = knob("BENCH_FANOUT_CLIENT_PROCS", 2);
  const senders = knob("BENCH_FANOUT_SENDERS", 4);

  const service = await startService();
  const channel = await service.createChannel();
  const children: Child[] = [service];
  const targets: Target[] = [
    {
      name: "service",
      kind: "ws",
      subscribeUrl: `${service.url.replace("http", "ws")}/ws/messaging/${channel}?user_id=${BENCH_USER}`,
      publish: (text) => service.send(channel, text),
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
      subscribeUrl: kind === "socketio" ? child.url : `${child.url.replace("http", "ws")}/ws`,
      publish: (text) => fetch(`${child.url}/publish`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text }) }),
    });
  }

  const rows: unknown[] = [];
  const paced: unknown[] = [];
  const pacedRate = knob("BENCH_FANOUT_PACED_RATE", 20);
  const pacedMessages = knob("BENCH_FANOUT_PACED_MESSAGES", 60);
  try {
    for (const subscribers of sizes) {
      const messages = messagesFor(subscribers);
      const byTarget = new Map<string, ReturnType<typeof summarize>[]>();
      for (let r = 0; r < rounds; r++) {
        for (const target of targets) {
          const result = summarize(await runOnce(target, subscribers, messages, procs, senders));
          byTarget.set(target.name, [...(byTarget.get(target.name) ?? []), result]);
          console.log(
            `fanout n=${subscribers} ${target.name}: ${result.deliveries_per_s} deliveries/s, p50 ${result.p50_ms} p99 ${result.p99_ms} ms, sends ${result.sends_per_s}/s${result.complete ? "" : " INCOMPLETE"}`,
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
        subscribers,
        messages,
        results: med,
        ratio_vs_bun: round(svc / med["bun-pubsub"]!.deliveries_per_s, 3),
        ratio_vs_node_ws: round(svc / med["node-ws"]!.deliveries_per_s, 3),
        ratio_vs_socketio: round(svc / med.socketio!.deliveries_per_s, 3),
      });
    }
    // Second pass: every target at the same, sustainable send rate. deliveries/s is then the
    // same for all that keep up; the p50/p99 from send to delivery compares the fan-out paths.
    for (const subscribers of sizes) {
      const results: Record<string, ReturnType<typeof summarize>> = {};
      for (const target of targets) {
        const result = summarize(await runOnce(target, subscribers, pacedMessages, procs, senders, pacedRate));
        results[target.name] = result;
        console.log(`fanout paced ${pacedRate}/s n=${subscribers} ${target.name}: p50 ${result.p50_ms} p99 ${result.p99_ms} ms${result.complete ? "" : " INCOMPLETE"}`);
      }
      paced.push({ subscribers, rate_per_s: pacedRate, messages: pacedMessages, results });
    }
  } finally {
    for (const c of children) await c.stop();
  }
  return { scenario: "fanout", params: { sizes, rounds, procs, senders, paced_rate: pacedRate }, rows, paced };
}

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

async function runOnce(target: Target, subscribers: number, messages: number, procs: number, senders: number, ratePerS = 0) {
  const perProc = Array.from({ length: procs }, (_, i) => Math.floor(subscribers / procs) + (i < subscribers % procs ? 1 : 0)).filter((n) => n > 0);
  const clients = perProc.map((n) =>
    Bun.spawn(["bun", benchPath("clients/subscribers.ts"), target.kind, target.subscribeUrl, String(n), String(messages), "60000"], {
      stdout: "pipe",
      stderr: "inherit",
    }),
  );
  const readers = clients.map((c) => lines(c.stdout));
  for (const r of readers) {
    const first = await r.next();
    if (first.done || !JSON.parse(first.value).ready) throw new Error(`${target.name}: subscribers did not open`);
  }
  const firstSend = nowMs();
  const publishOne = async () => {
    const res = await target.publish(`fanout ${nowMs().toFixed(3)}`);
    await res.arrayBuffer();
    if (res.status !== 201 && res.status !== 202) throw new Error(`${target.name}: publish answered ${res.status}`);
  };
  if (ratePerS > 0) {
    // Paced: the same send schedule for every target, so latency compares fan-out alone.
    const sends: Promise<void>[] = [];
    for (let i = 0; i < messages; i++) {
      const due = firstSend + (i * 1000) / ratePerS;
      if (due > nowMs()) await Bun.sleep(due - nowMs());
      sends.push(publishOne());
    }
    await Promise.all(sends);
  } else {
    let next = 0;
    await Promise.all(
      Array.from({ length: senders }, async () => {
        while (next < messages) {
          next++;
          await publishOne();
        }
      }),
    );
  }
  const lastSendDone = nowMs();
  const reports: ClientReport[] = [];
  for (const r of readers) {
    const line = await r.next();
    if (line.done) throw new Error(`${target.name}: a subscriber process died`);
    reports.push(JSON.parse(line.value));
  }
  await Promise.all(clients.map((c) => c.exited));
  return { reports, firstSend, lastSendDone, messages };
}

async function* lines(stream: ReadableStream<Uint8Array>) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
    }
  }
  if (buffer) yield buffer;
}

