import type { MatrixClient } from "matrix-js-sdk";
import { elementClient, nextRoomEvent, registerRealUser, synapse } from "../../test/helpers/synapse.ts";
import { BENCH_USER, startService } from "../lib/service.ts";
import { knob, latency, nowMs, round } from "../lib/stats.ts";

/**
 * d) A matrix-js-sdk user sends into a channel's room on Synapse; we time the arrival at
 * (1) our WebSocket subscriber (Synapse → our sync poller → actor → index → fan-out) and
 * (2) a second matrix-js-sdk client syncing the same room. One message at a time, so the two
 * paths race for the same event. Needs the Synapse environment (`bun run synapse env`).
 */
export async function syncbackScenario() {
  if (!synapse) throw new Error("syncback needs MATRIX_HOMESERVER_URL etc.: set -a; eval \"$(bun run --silent synapse env)\"; set +a");
  const messages = knob("BENCH_SYNCBACK_MESSAGES", 20);
  const service = await startService({
    MATRIX_HOMESERVER_URL: synapse.url,
    MATRIX_SERVER_NAME: synapse.serverName,
    MATRIX_AS_TOKEN: synapse.asToken,
    MATRIX_HS_TOKEN: synapse.hsToken,
  });
  const clients: MatrixClient[] = [];
  let ws: WebSocket | undefined;
  try {
    const channelId = await service.createChannel();
    const channel = (await (await fetch(`${service.url}/api/messaging/channels/${channelId}`, { headers: { "x-user-id": BENCH_USER } })).json()) as {
      matrix_room_id: string;
      matrix_alias: string;
    };
    const alice = await elementClient(await registerRealUser("benchalice"));
    const bob = await elementClient(await registerRealUser("benchbob"));
    clients.push(alice, bob);
    await alice.joinRoom(channel.matrix_alias);
    await bob.joinRoom(channel.matrix_alias);

    ws = new WebSocket(`${service.url.replace("http", "ws")}/ws/messaging/${channelId}?user_id=${BENCH_USER}`);
    const waiters = new Map<string, (t: number) => void>();
    ws.onmessage = (e) => {
      const m = /syncback-\d+-[a-z0-9]+/.exec(String(e.data));
      if (m && String(e.data).includes('"message.created"')) waiters.get(m[0])?.(nowMs());
    };
    await new Promise<void>((resolve, reject) => {
      ws!.onopen = () => resolve();
      ws!.onerror = () => reject(new Error("websocket failed"));
    });

    const toWs: number[] = [];
    const toSdk: number[] = [];
    for (let i = 0; i < messages + 2; i++) {
      const body = `syncback-${i}-${Math.random().toString(36).slice(2, 8)}`;
      const viaWs = new Promise<number>((resolve, reject) => {
        waiters.set(body, resolve);
        setTimeout(() => reject(new Error("no WebSocket frame within 20 s")), 20_000);
      });
      const viaSdk = nextRoomEvent(bob, channel.matrix_room_id, (e) => e.getContent().body === body).then(() => nowMs());
      const t0 = nowMs();
      await alice.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body } as never);
      const [a, b] = await Promise.all([viaWs, viaSdk]);
      waiters.delete(body);
      if (i < 2) continue; // warm-up
      toWs.push(a - t0);
      toSdk.push(b - t0);
    }
    const w = latency(toWs);
    const s = latency(toSdk);
    console.log(`syncback: to our WebSocket p50 ${w.p50} p99 ${w.p99} ms; to a syncing client p50 ${s.p50} p99 ${s.p99} ms; ratio ${round(w.p50 / s.p50, 3)}`);
    return { scenario: "syncback", params: { messages, events_mode: "sync" }, result: { websocket: w, sdk: s, ratio_p50: round(w.p50 / s.p50, 3), ratio_p99: round(w.p99 / s.p99, 3) } };
  } finally {
    ws?.close();
    for (const c of clients) c.stopClient();
    await service.stop();
  }
}
