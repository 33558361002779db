/**
 * A loader process: opens `count` subscribers (plain WebSocket or Socket.IO), prints
 * {"ready":true} once all are open, then measures each frame's latency from the send
 * timestamp embedded in its text ("fanout <ms>"). Exits after `expected` frames per
 * subscriber or at the deadline, printing one JSON line with the samples' summary.
 */
import { io } from "socket.io-client";
import { latency, nowMs } from "../lib/stats.ts";

const [kind, url, countArg, expectedArg, deadlineArg] = process.argv.slice(2);
const count = Number(countArg);
const expected = Number(expectedArg);
const deadlineMs = Number(deadlineArg ?? 60_000);

const samples: number[] = [];
let deliveries = 0;
let done = 0;
let lastDelivery = 0;
const pattern = /fanout (\d+\.\d+)/;

function onFrame(state: { n: number }, data: string) {
  const m = pattern.exec(data);
  if (!m) return;
  const now = nowMs();
  samples.push(now - Number(m[1]));
  deliveries++;
  lastDelivery = now;
  if (++state.n === expected && ++done === count) finish();
}

const closers: (() => void)[] = [];
async function openOne(): Promise<void> {
  const state = { n: 0 };
  if (kind === "socketio") {
    const socket = io(url!, { transports: ["websocket"], reconnection: false, forceNew: true });
    closers.push(() => socket.close());
    socket.on("frame", (data: string) => onFrame(state, data));
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("connect_error", reject);
    });
    return;
  }
  const ws = new WebSocket(url!);
  closers.push(() => ws.close());
  ws.onmessage = (e) => onFrame(state, typeof e.data === "string" ? e.data : "");
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("websocket failed to open"));
  });
}

// Open in batches: a thousand simultaneous handshakes measure the accept queue, not fan-out.
for (let i = 0; i < count; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, count - i) }, openOne));
}
console.log(JSON.stringify({ ready: true }));
const timer = setTimeout(finish, deadlineMs);

function finish() {
  clearTimeout(timer);
  console.log(JSON.stringify({ deliveries, lastDelivery, latency: latency(samples), complete: done === count }));
  for (const close of closers) close();
  process.exit(0);
}
