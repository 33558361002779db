import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { freshPostgresDatabase, serviceMissing } from "../helpers/services.ts";
import { elementClient, nextRoomEvent, registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(120_000);

/**
 * Two instances in cluster mode on Synapse, an Element user (matrix-js-sdk) in the same room:
 * a send through the instance that does not own the channel reaches Bob's timeline once; Bob's
 * messages are read by the one /sync poller, indexed once by the channel's owner, and reach
 * subscribers on both instances; when the poller's instance stops, the other one polls.
 */
describe.skipIf(synapseMissing() || serviceMissing("DATABASE_URL") || serviceMissing("NATS_URL"))("cluster on Synapse, with an Element user", () => {
  let db: { url: string; drop: () => Promise<void> };
  const servers: TestServer[] = [];
  let client: MatrixClient;
  let bob: { userId: string; accessToken: string };

  beforeAll(async () => {
    db = await freshPostgresDatabase("daarion_cluster_synapse");
    const name = `syn${crypto.randomUUID().slice(0, 8)}`;
    for (const id of ["syn-a", "syn-b"]) {
      servers.push(await startTestServer(synapseServiceEnv({ CLUSTER: "on", CLUSTER_NAME: name, INSTANCE_ID: id, CLUSTER_LEASE_TTL_MS: "3000", DATABASE_URL: db.url, SYNC_TIMEOUT_MS: "2000" })));
    }
    bob = await registerRealUser("cluster");
    client = await elementClient(bob);
  });
  afterAll(async () => {
    client?.stopClient();
    for (const server of servers.reverse()) await server.stop();
    await db?.drop();
  });

  const view = async (s: TestServer, channelId: string) =>
    (await (await s.api(`/internal/cluster?channel_id=${channelId}`)).json()) as { incarnation: string; leaders: string[]; channel: { owner: string | null } };

  async function frameWhere(inbox: WsInbox, type: string, pred: (f: any) => boolean, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = await inbox.nextJson(Math.max(1, deadline - Date.now()));
      if (f.type === type && pred(f)) return f;
    }
  }

  test("sends through the non-owner reach Element once; Element's messages are indexed once and reach both instances' sockets; the poller moves on a stop", async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const channel = await createChannel(a, "user:alice", { visibility: "public" });
    let owner: TestServer;
    let other: TestServer;
    for (const deadline = Date.now() + 15_000; ; ) {
      const [va, vb] = await Promise.all([view(a, channel.id), view(b, channel.id)]);
      if (va.channel.owner && va.channel.owner === vb.channel.owner) {
        [owner, other] = va.channel.owner === va.incarnation ? [a, b] : [b, a];
        break;
      }
      if (Date.now() > deadline) throw new Error("no agreed owner");
      await Bun.sleep(50);
    }
    const sockets = await Promise.all([owner, other].map((s) => WsInbox.open(`${s.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:alice" })));
    await client.joinRoom(channel.matrix_alias);

    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().body === "through the other instance");
    const sent = await other.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "through the other instance" } });
    expect(sent.status).toBe(201);
    const message = await sent.json();
    expect((await seen).getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    for (const inbox of sockets) expect((await frameWhere(inbox, "message.created", (f) => f.message.id === message.id)).seq).toBe(message.seq);

    const { event_id: fromBob } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "hello from Element" } as never);
    for (const inbox of sockets) {
      const f = await frameWhere(inbox, "message.created", (x) => x.message.matrix_event_id === fromBob);
      expect(f.message.sender_id).toBe(`matrix:${bob.userId}`);
    }
    const rows = await a.app.deps.sql`select count(*)::int as n from messages where matrix_event_id = ${fromBob}`;
    expect(rows[0]!.n).toBe(1);

    // The instance that polls /sync stops (a deploy): the other one takes the role and Bob's next message still arrives.
    const leader = (await view(a, channel.id)).leaders.includes("sync") ? a : b;
    const survivor = leader === a ? b : a;
    const survivorSocket = sockets[[owner, other].indexOf(survivor)]!;
    await leader.stop();
    servers.splice(servers.indexOf(leader), 1);
    const { event_id: afterStop } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "after the poller moved" } as never);
    const after = await frameWhere(survivorSocket, "message.created", (x) => x.message.matrix_event_id === afterStop);
    expect(after.message.text ?? after.message.content_preview).toBe("after the poller moved");
    expect((await view(survivor, channel.id)).leaders).toContain("sync");
    for (const inbox of sockets) inbox.close();
  });
});
