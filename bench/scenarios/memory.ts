import { benchPath, freePort, memoryStatusOf, requireFdLimit, spawnServer, withFdLimit, type Child, type MemoryStatus } from "../lib/proc.ts";
import { sized, type Plan } from "../lib/preset.ts";
import { BENCH_USER, startService } from "../lib/service.ts";
import { knob, round } from "../lib/stats.ts";

/** Issue 15, target 7: the whole service on its embedded defaults, in MB (MiB: /proc's kB ÷ 1024). */
export const EMBEDDED_IDLE_TARGET_MB = 250;
export const EMBEDDED_AFTER_MESSAGES_TARGET_MB = 400;

interface EmbeddedParams {
  /** 0 leaves the embedded case out. */
  messages: number;
  channels: number;
  senders: number;
  idleSeconds: number;
  settleSeconds: number;
}

/**
 * e) RSS of the service process: idle, with N idle WebSocket subscribers (raw Bun pub/sub
 * with the same clients as the reference), then after M channels were each active once
 * (one message) and left idle long enough to passivate (ACTOR_IDLE_MS is lowered for the run).
 */
export function memoryPlan(): Plan<{ connections: number; channels: number; embedded: EmbeddedParams }> {
  const connections = sized("BENCH_MEMORY_CONNECTIONS", { quick: 1000, full: 10_000 });
  const channels = sized("BENCH_MEMORY_CHANNELS", { quick: 200, full: 10_000 });
  // The target's size in both presets.
  const embedded: EmbeddedParams = {
    // BENCH_MEMORY_EMBEDDED_MESSAGES=0 leaves the embedded case out.
    messages: process.env.BENCH_MEMORY_EMBEDDED_MESSAGES === "0" ? 0 : knob("BENCH_MEMORY_EMBEDDED_MESSAGES", 10_000),
    channels: knob("BENCH_MEMORY_EMBEDDED_CHANNELS", 10),
    senders: knob("BENCH_MEMORY_EMBEDDED_SENDERS", 16),
    idleSeconds: knob("BENCH_MEMORY_EMBEDDED_IDLE_SECONDS", 10),
    settleSeconds: 5,
  };
  // Embedded: a first start (initdb, ~8 s), the idle window, sends at ~200/s, the settle.
  const embeddedSeconds = embedded.messages > 0 ? 8 + embedded.idleSeconds + embedded.messages / 200 + embedded.settleSeconds : 0;
  // Two sets of idle sockets (service, raw Bun), then a create + a send per channel, 4 at a time.
  const estimateSeconds = embeddedSeconds + 10 + 2 * (3 + connections / 1500) + channels / 100;
  return { params: { connections, channels, embedded }, estimateSeconds: Math.round(estimateSeconds) };
}

export async function memoryScenario() {
  const { connections, channels, embedded: embeddedParams } = memoryPlan().params;
  requireFdLimit(connections, "memory");
  // First and alone: no other server of the bench is running yet.
  const embedded = embeddedParams.messages > 0 ? await embeddedFootprint(embeddedParams) : null;
  const idleMs = 300;
  const service = await startService({ ACTOR_IDLE_MS: String(idleMs) });
  const bunPort = await freePort();
  const bun = await spawnServer(["bun", benchPath("servers/bun-pubsub.ts")], { name: "bun-pubsub", port: bunPort, env: { PORT: String(bunPort) }, readyPath: "/" });
  try {
    const channel = await service.createChannel();
    await service.send(channel, "warm");
    const svcConn = await perConnection(service, `${service.url.replace("http", "ws")}/ws/messaging/${channel}?user_id=${BENCH_USER}`, connections);
    const bunConn = await perConnection(bun, `${bun.url.replace("http", "ws")}/ws`, connections);
    console.log(`memory: ${connections} idle connections: service +${svcConn.per_connection_kb} KB each, raw Bun +${bunConn.per_connection_kb} KB each`);

    const before = await settledRss(service);
    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < channels) {
          next++;
          const id = await service.createChannel();
          const res = await service.send(id, "once");
          await res.arrayBuffer();
          ids.push(id);
        }
      }),
    );
    const activeRss = service.rssKb();
    const health = async () => (await (await fetch(`${service.url}/health`)).json()) as { active_actors: number; live: Record<string, number> };
    const peakActors = (await health()).active_actors;
    const deadline = Date.now() + 30_000;
    let h = await health();
    while (h.active_actors > 0 && Date.now() < deadline) {
      await Bun.sleep(100);
      h = await health();
    }
    const after = await settledRss(service);
    const result = {
      embedded,
      connections,
      service_idle_connections: svcConn,
      bun_idle_connections: bunConn,
      channels,
      rss_before_channels_kb: before,
      rss_channels_active_kb: activeRss,
      rss_after_passivation_kb: after,
      actors_right_after_sends: peakActors,
      actors_after_idle: h.active_actors,
      live_after_idle: h.live,
      per_passivated_channel_kb: round((after - before) / channels),
    };
    console.log(`memory: ${channels} channels active once: actors ${peakActors} -> ${h.active_actors}; RSS ${before} -> ${after} KB`);
    return { scenario: "memory", params: { connections, channels, actor_idle_ms: idleMs, embedded: embeddedParams }, result };
  } finally {
    await service.stop();
    await bun.stop();
  }
}

/**
 * The whole service on its embedded defaults (PGlite in a fresh DATA_DIR behind pglite-socket,
 * the in-process event bus, the local Matrix backend): RSS each second of an idle window from
 * the moment /ready answers (the target is its highest sample, the one at /ready included), then after `messages` REST sends
 * over `channels` channels by `senders` at once (the target is the sample right after the last
 * one; the peak during the sends and the figure after a quiet `settleSeconds` are reported too).
 * The server's garbage is not forced out, so these are upper bounds.
 */
async function embeddedFootprint(p: EmbeddedParams) {
  const service = await startService({}, { embedded: true });
  const pid = service.proc.pid;
  const mb = (kb: number) => round(kb / 1024, 1);
  const status = (s: MemoryStatus) => ({ rss_mb: mb(s.rss_kb), anon_mb: mb(s.anon_kb), file_mb: mb(s.file_kb), shmem_mb: mb(s.shmem_kb), peak_mb: mb(s.peak_kb) });
  try {
    const atReady = memoryStatusOf(pid);
    const idleRss: number[] = [atReady.rss_kb];
    for (let i = 0; i < p.idleSeconds; i++) {
      await Bun.sleep(1000);
      idleRss.push(memoryStatusOf(pid).rss_kb);
    }
    const idleEnd = memoryStatusOf(pid);
    const channelIds: string[] = [];
    for (let i = 0; i < p.channels; i++) channelIds.push(await service.createChannel());
    let sendPeak = 0;
    const sampler = setInterval(() => (sendPeak = Math.max(sendPeak, memoryStatusOf(pid).rss_kb)), 250);
    let next = 0;
    let failed = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: p.senders }, async (_, s) => {
        const channel = channelIds[s % channelIds.length]!;
        while (next < p.messages) {
          const n = next++;
          const res = await service.send(channel, `embedded footprint message ${n}`);
          await res.arrayBuffer();
          if (res.status !== 201) failed++;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const afterMessages = memoryStatusOf(pid);
    await Bun.sleep(p.settleSeconds * 1000);
    const settled = memoryStatusOf(pid);
    const idleMax = Math.max(...idleRss);
    const afterMb = mb(afterMessages.rss_kb);
    console.log(
      `memory: embedded defaults: RSS ${mb(atReady.rss_kb)} MB at /ready, at most ${mb(idleMax)} MB idle from then for ${p.idleSeconds} s (target ≤ ${EMBEDDED_IDLE_TARGET_MB}); ` +
        `${afterMb} MB after ${p.messages.toLocaleString("en-US")} messages (target ≤ ${EMBEDDED_AFTER_MESSAGES_TARGET_MB}; peak ${mb(Math.max(sendPeak, afterMessages.rss_kb))} MB during the sends, ${mb(settled.rss_kb)} MB ${p.settleSeconds} s later); ${failed} sends not 201`,
    );
    return {
      at_ready: status(atReady),
      idle_rss_mb_per_second: idleRss.map(mb),
      idle_max_rss_mb: mb(idleMax),
      idle_end: status(idleEnd),
      messages: p.messages,
      sends_per_second: round(p.messages / seconds, 0),
      sends_not_201: failed,
      rss_peak_during_sends_mb: mb(Math.max(sendPeak, afterMessages.rss_kb)),
      after_messages: status(afterMessages),
      after_settle: status(settled),
      targets_mb: { idle: EMBEDDED_IDLE_TARGET_MB, after_messages: EMBEDDED_AFTER_MESSAGES_TARGET_MB },
      idle_target_met: mb(idleMax) <= EMBEDDED_IDLE_TARGET_MB,
      after_messages_target_met: afterMb <= EMBEDDED_AFTER_MESSAGES_TARGET_MB && failed === 0,
    };
  } finally {
    await service.stop();
  }
}

/** RSS after a quiet second. The server's garbage is not forced out, so figures are upper bounds. */
async function settledRss(child: Child) {
  await Bun.sleep(1000);
  return child.rssKb();
}

async function perConnection(server: Child, url: string, n: number) {
  const before = await settledRss(server);
  const clients = Bun.spawn(withFdLimit(["bun", benchPath("clients/subscribers.ts"), "ws", url, String(n), "1000000000", "600000"]), { stdout: "pipe", stderr: "inherit" });
  const reader = clients.stdout.getReader();
  const { value } = await reader.read();
  if (!value || !new TextDecoder().decode(value).includes("ready")) throw new Error("idle subscribers did not open");
  await Bun.sleep(1000);
  const withConnections = server.rssKb();
  clients.kill();
  await clients.exited;
  return { rss_before_kb: before, rss_with_connections_kb: withConnections, per_connection_kb: round((withConnections - before) / n) };
}
