import { benchPath, freePort, requireFdLimit, spawnServer, withFdLimit, type Child } from "../lib/proc.ts";
import { sized, type Plan } from "../lib/preset.ts";
import { BENCH_USER, startService } from "../lib/service.ts";
import { round } from "../lib/stats.ts";

/**
 * e) RSS of the service process: idle, with N idle WebSocket subscribers (raw Bun pub/sub
 * with the same clients as the reference), then after M channels were each active once
 * (one message) and left idle long enough to passivate (ACTOR_IDLE_MS is lowered for the run).
 */
export function memoryPlan(): Plan<{ connections: number; channels: number }> {
  const connections = sized("BENCH_MEMORY_CONNECTIONS", { quick: 1000, full: 10_000 });
  const channels = sized("BENCH_MEMORY_CHANNELS", { quick: 200, full: 10_000 });
  // Two sets of idle sockets (service, raw Bun), then a create + a send per channel, 4 at a time.
  const estimateSeconds = 10 + 2 * (3 + connections / 1500) + channels / 100;
  return { params: { connections, channels }, estimateSeconds: Math.round(estimateSeconds) };
}

export async function memoryScenario() {
  const { connections, channels } = memoryPlan().params;
  requireFdLimit(connections, "memory");
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
    return { scenario: "memory", params: { connections, channels, actor_idle_ms: idleMs }, result };
  } finally {
    await service.stop();
    await bun.stop();
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
