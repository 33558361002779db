import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv, nextRoomEvent } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("threads with Element (Synapse)", () => {
  let server: TestServer;
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    client = await elementClient(await registerRealUser("threader"));
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);


  test("a thread started over REST is a Matrix thread in the client, and the client's thread reply comes back in it", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const root = await (
      await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "thread root" } })
    ).json();
    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().body === "in the thread");
    const reply = await server.api(`/api/messaging/channels/${channel.id}/messages`, {
      method: "POST",
      as: "user:alice",
      json: { text: "in the thread", thread_id: root.id },
    });
    expect(reply.status).toBe(201);
    const event = await seen;
    expect(event.getContent()["m.relates_to"]).toMatchObject({ rel_type: "m.thread", event_id: root.matrix_event_id, is_falling_back: true });
    expect(event.threadRootId).toBe(root.matrix_event_id);

    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    const { event_id } = await client.sendMessage(channel.matrix_room_id, {
      msgtype: "m.text",
      body: "answer from Element",
      "m.relates_to": { rel_type: "m.thread", event_id: root.matrix_event_id, is_falling_back: true, "m.in_reply_to": { event_id: root.matrix_event_id } },
    } as never);
    let frame = await inbox.nextJson(20000);
    while (frame.type !== "message.created") frame = await inbox.nextJson(20000);
    expect(frame.message).toMatchObject({ matrix_event_id: event_id, thread_id: root.id, reply_to: null });
    inbox.close();
    const listing = await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:alice" })).json();
    expect(listing.find((m: { id: string }) => m.id === root.id)).toMatchObject({ reply_count: 2 });
  });
});
