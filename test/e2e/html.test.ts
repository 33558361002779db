import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv, nextRoomEvent } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

/**
 * formatted_body is reduced to the Matrix spec's HTML allow-list both ways: what the API sends
 * (a matrix-js-sdk client in Synapse sees it sanitised) and what Element users send (the API
 * serves it sanitised, in a message's content and in its edit history).
 */
setDefaultTimeout(60_000);

const HOSTILE =
  '<img src=x onerror="alert(1)"><script>alert(2)</script><b onclick="steal()">bold</b> <a href="javascript:alert(3)">link</a> ' +
  '<a href="https://daarion.city" target="_blank">ok</a><img src="mxc://daarion.city/abc" alt="pic" style="position:fixed"><iframe src="https://evil.example"></iframe>';
const SAFE = '<b>bold</b> <a>link</a> <a href="https://daarion.city" target="_blank">ok</a><img src="mxc://daarion.city/abc" alt="pic" />';

describe.skipIf(synapseMissing())("HTML in formatted_body (Synapse)", () => {
  let server: TestServer;
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    client = await elementClient(await registerRealUser("html"));
  }, 120000);

  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);

  async function channelWithElementUser() {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.joined" });
    return { channel, inbox };
  }


  test("an API send and edit reach Matrix sanitised, and are served sanitised", async () => {
    const { channel, inbox } = await channelWithElementUser();
    try {
      const seenSend = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.message" && e.getContent().body === "bold link ok");
      const res = await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "bold link ok", formatted_body: HOSTILE } });
      expect(res.status).toBe(201);
      const msg = await res.json();
      expect((await seenSend).getContent()).toMatchObject({ format: "org.matrix.custom.html", formatted_body: SAFE });
      const detail = await (await api(`/${channel.id}/messages/${msg.id}`, { as: "user:alice" })).json();
      expect(detail.content).toMatchObject({ format: "org.matrix.custom.html", formatted_body: SAFE });

      // HTML with nothing left after sanitising is no HTML: a plain message.
      const seenPlain = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().body === "nothing safe");
      const plain = await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "nothing safe", formatted_body: "<script>alert(1)</script>" } });
      expect(plain.status).toBe(201);
      expect((await seenPlain).getContent()).toEqual({ msgtype: "m.text", body: "nothing safe" });

      const seenEdit = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent()["m.relates_to"]?.rel_type === "m.replace");
      const edit = await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:alice", json: { text: "bold link ok, edited", formatted_body: HOSTILE } });
      expect(edit.status).toBe(200);
      expect((await seenEdit).getContent()).toMatchObject({
        formatted_body: `* ${SAFE}`,
        "m.new_content": { msgtype: "m.text", body: "bold link ok, edited", format: "org.matrix.custom.html", formatted_body: SAFE },
      });
      const versions = await (await api(`/${channel.id}/messages/${msg.id}/edits`, { as: "user:alice" })).json();
      expect(versions.at(-1)).toMatchObject({ version: 2, formatted_body: SAFE });
      const [stored] = await server.app.deps.sql`select formatted_body from message_edits where message_id = ${msg.id} and version = 2`;
      expect(stored!.formatted_body).toBe(SAFE);
    } finally {
      inbox.close();
    }
  });

  test("HTML an Element user sends is served sanitised: the message's content and its edits", async () => {
    const { channel, inbox } = await channelWithElementUser();
    try {
      const { event_id: original } = await client.sendMessage(channel.matrix_room_id, {
        msgtype: "m.text",
        body: "bold link ok",
        format: "org.matrix.custom.html",
        formatted_body: HOSTILE,
      } as never);
      const created = await inbox.nextOfType("message.created");
      expect(created.message.matrix_event_id).toBe(original);
      const detail = await (await api(`/${channel.id}/messages/${created.message.id}`, { as: "user:alice" })).json();
      expect(detail.content).toMatchObject({ body: "bold link ok", format: "org.matrix.custom.html", formatted_body: SAFE });

      await client.sendMessage(channel.matrix_room_id, {
        msgtype: "m.text",
        body: "* edited",
        format: "org.matrix.custom.html",
        formatted_body: `* ${HOSTILE}`,
        "m.new_content": { msgtype: "m.text", body: "edited", format: "org.matrix.custom.html", formatted_body: HOSTILE },
        "m.relates_to": { rel_type: "m.replace", event_id: original },
      } as never);
      expect(await inbox.nextOfType("message.updated")).toMatchObject({ message: { id: created.message.id, content_preview: "edited" } });
      const versions = await (await api(`/${channel.id}/messages/${created.message.id}/edits`, { as: "user:alice" })).json();
      expect(versions.map((v: { formatted_body: string | null }) => v.formatted_body)).toEqual([null, SAFE]);
      const [stored] = await server.app.deps.sql`select formatted_body from message_edits where message_id = ${created.message.id} and version = 2`;
      expect(stored!.formatted_body).toBe(SAFE);
    } finally {
      inbox.close();
    }
  });
});
