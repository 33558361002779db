/**
 * A loader process: opens `count` subscribers (plain WebSocket or Socket.IO), subscriber i to
 * urls[(first + i) % urls.length], so processes given consecutive `first`s spread evenly over
 * the channels. Prints {"ready":true} once all are open, then measures each frame's latency
 * from the send timestamp embedded in its text ("fanout <ms>"). Reports after `expected` frames
 * per subscriber, when told so on stdin ("finish"), or at the deadline, printing one JSON line
 * with the samples' summary.
 *
 * With `seq` as the last argument (the service only) a subscriber counts a message.created
 * frame once per seq: a repeated or older seq is a duplicate, and the report adds what is
 * missing (expected − distinct, summed over the subscribers), duplicated, and the
 * message.updated frames that carried a bench text (a relayed frame that came after its repair).
 *
 *   bun subscribers.ts <ws|socketio> <url>[,<url>…] <count> <expected> [deadline ms] [first] [seq]
 */
import { io } from "socket.io-client";
import { latency, nowMs } from "../lib/stats.ts";

const [kind, urlsArg, countArg, expectedArg, deadlineArg, firstArg, checkArg] = process.argv.slice(2);
const urls = urlsArg!.split(",");
const count = Number(countArg);
const expected = Number(expectedArg);
const deadlineMs = Number(deadlineArg ?? 60_000);
const first = Number(firstArg ?? 0);
const checkSeq = checkArg === "seq";
// A server that never completes a handshake must not hang the run.
const openTimeoutMs = 120_000;

const samples: number[] = [];
let deliveries = 0;
let done = 0;
let lastDelivery = 0;
const pattern = /fanout (\d+\.\d+)/;
const created = /^\{"type":"message\.created","seq":(\d+)/;
let duplicated = 0;
let updated = 0;
const states: { n: number; seq: number }[] = [];

function onFrame(state: { n: number; seq: number }, data: string) {
  const m = pattern.exec(data);
  if (!m) return;
  if (checkSeq) {
    const c = created.exec(data);
    if (!c) {
      updated++;
      return;
    }
    const seq = Number(c[1]);
    if (seq <= state.seq) {
      duplicated++;
      return;
    }
    state.seq = seq;
  }
  const now = nowMs();
  samples.push(now - Number(m[1]));
  deliveries++;
  lastDelivery = now;
  if (++state.n === expected && ++done === count) finish();
}

const closers: (() => void)[] = [];
async function openOne(url: string): Promise<void> {
  const state = { n: 0, seq: 0 };
  states.push(state);
  if (kind === "socketio") {
    const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
    closers.push(() => socket.close());
    socket.on("frame", (data: string) => onFrame(state, data));
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("connect_error", reject);
    });
    return;
  }
  const ws = new WebSocket(url);
  closers.push(() => ws.close());
  ws.onmessage = (e) => onFrame(state, typeof e.data === "string" ? e.data : "");
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`websocket to ${url} failed to open`));
  });
}

const openTimer = setTimeout(() => {
  console.error(`subscribers: not all ${count} open after ${openTimeoutMs} ms`);
  process.exit(1);
}, openTimeoutMs);
// Open in batches: a thousand simultaneous handshakes measure the accept queue, not fan-out.
for (let i = 0; i < count; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => openOne(urls[(first + i + j) % urls.length]!)));
}
clearTimeout(openTimer);
console.log(JSON.stringify({ ready: true }));
const timer = setTimeout(finish, deadlineMs);
void (async () => {
  for await (const chunk of Bun.stdin.stream()) if (new TextDecoder().decode(chunk).includes("finish")) finish();
})();

function finish() {
  clearTimeout(timer);
  const check = checkSeq
    ? { missing: states.reduce((a, s) => a + Math.max(0, expected - s.n), 0) + (count - states.length) * expected, duplicated, updated, short: states.filter((s) => s.n < expected).length }
    : {};
  console.log(JSON.stringify({ deliveries, lastDelivery, latency: latency(samples), complete: done === count, ...check }));
  for (const close of closers) close();
  process.exit(0);
}
