import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

/** Messages written in Element (matrix-js-sdk) are searchable through the service, on a real Synapse. */
setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("search (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bobsearch");
    client = await elementClient(bob);
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  /** Resolves once the service has indexed the Matrix event (its message.created frame). */
  async function indexed(ws: WsInbox, eventId: string) {
    for (;;) {
      const frame = await ws.nextJson(20000);
      if (frame.type === "message.created" && frame.message.matrix_event_id === eventId) return frame.message;
    }
  }

  const search = async (as: string, query: string) =>
    (await (await server.api(`/api/messaging/search?${query}`, { as })).json()) as Array<{ id: string; sender_id: string; thread_id: string | null; content_preview: string }>;

  test("Element messages, thread replies included, are found; a private room's messages only by its members", async () => {
    const word = `zq${Date.now().toString(36)}`;
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const ws = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:admin" });
    try {
      const root = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: `Ünïcode ${word} from Element` } as never);
      const rootMsg = await indexed(ws, root.event_id);
      const reply = await client.sendMessage(channel.matrix_room_id, {
        msgtype: "m.text",
        body: `threaded ${word}`,
        "m.relates_to": { rel_type: "m.thread", event_id: root.event_id, is_falling_back: true, "m.in_reply_to": { event_id: root.event_id } },
      } as never);
      const replyMsg = await indexed(ws, reply.event_id);

      const hits = await search("user:eve", `q=${word}`);
      expect(hits.map((h) => h.id).sort()).toEqual([rootMsg.id, replyMsg.id].sort());
      expect(hits.find((h) => h.id === replyMsg.id)).toMatchObject({ sender_id: `matrix:${bob.userId}`, thread_id: rootMsg.id });
      expect((await search("user:eve", `q=${encodeURIComponent("ünïcode")}&sender_id=${encodeURIComponent(`matrix:${bob.userId}`)}`)).map((h) => h.id)).toContain(rootMsg.id);
    } finally {
      ws.close();
    }

    const priv = await createChannel(server, "user:admin", { visibility: "private" });
    await server.api(`/api/messaging/channels/${priv.id}/members`, { method: "POST", as: "user:admin", json: { member_id: `matrix:${bob.userId}`, role: "member" } });
    await client.joinRoom(priv.matrix_room_id);
    const privWs = await WsInbox.open(`${server.wsUrl}/ws/messaging/${priv.id}`, { "x-user-id": "user:admin" });
    try {
      const secret = await client.sendMessage(priv.matrix_room_id, { msgtype: "m.text", body: `secret ${word}` } as never);
      const secretMsg = await indexed(privWs, secret.event_id);
      expect((await search("user:admin", `q=secret ${word}`)).map((h) => h.id)).toEqual([secretMsg.id]);
      expect(await search("user:eve", `q=secret ${word}`)).toEqual([]);
    } finally {
      privWs.close();
    }
  });
});
