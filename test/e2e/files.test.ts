import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv, nextRoomEvent } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

/** Files both ways between the service and a Matrix client (matrix-js-sdk plays Element) on a real Synapse. */
setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("files (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bobfiles");
    client = await elementClient(bob);
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);


  /** Bob fetches media the way Element does: authenticated media with his own token. */
  async function bobDownloads(mxc: string): Promise<Response> {
    const [serverName, mediaId] = mxc.slice("mxc://".length).split("/");
    return fetch(`${synapse!.url}/_matrix/client/v1/media/download/${serverName}/${mediaId}`, {
      headers: { authorization: `Bearer ${bob.accessToken}` },
    });
  }

  test("a REST upload reaches Element as an m.image with an mxc url Bob can download", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const bytes = new Uint8Array(2048).map((_, i) => i % 251);
    bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 16, 0, 0, 0, 9]);
    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().msgtype === "m.image");
    const form = new FormData();
    form.append("file", new Blob([bytes], { type: "image/png" }), "chart.png");
    form.append("text", "the chart");
    const res = await server.api(`/api/messaging/channels/${channel.id}/files`, { method: "POST", as: "user:alice", body: form });
    expect(res.status).toBe(201);
    const msg = await res.json();
    expect(msg.media.url).toMatch(new RegExp(`^mxc://${synapse!.serverName.replace(/\./g, "\\.")}/`));

    const event = await seen;
    expect(event.getId()).toBe(msg.matrix_event_id);
    expect(event.getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    expect(event.getContent()).toEqual({
      msgtype: "m.image",
      body: "the chart",
      filename: "chart.png",
      url: msg.media.url,
      info: { mimetype: "image/png", size: 2048, w: 16, h: 9 },
    });
    const fromSynapse = await bobDownloads(msg.media.url);
    expect(fromSynapse.status).toBe(200);
    expect(new Uint8Array(await fromSynapse.arrayBuffer())).toEqual(bytes);

    const viaService = await server.api(msg.media.download_path, { as: "user:carol" });
    expect(viaService.status).toBe(200);
    expect(viaService.headers.get("content-type")).toBe("image/png");
    expect(new Uint8Array(await viaService.arrayBuffer())).toEqual(bytes);
  });

  test("a file Bob uploads and sends from Element syncs back as a media message and downloads through the service", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const ws = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:admin" });
    try {
      const text = "minutes of the meeting\n".repeat(50);
      const { content_uri } = await client.uploadContent(new Blob([text], { type: "text/plain" }), { name: "minutes.txt", type: "text/plain" });
      const { event_id } = await client.sendMessage(channel.matrix_room_id, {
        msgtype: "m.file",
        body: "minutes.txt",
        url: content_uri,
        info: { mimetype: "text/plain", size: text.length },
      } as never);
      let frame = await ws.nextJson(20000);
      while (frame.type !== "message.created" || frame.message.matrix_event_id !== event_id) frame = await ws.nextJson(20000);
      expect(frame.message).toMatchObject({
        sender_id: `matrix:${bob.userId}`,
        content_type: "file",
        msgtype: "m.file",
        content_preview: "minutes.txt",
        media: { url: content_uri, mimetype: "text/plain", size: text.length, filename: "minutes.txt" },
      });
      const file = await server.api(frame.message.media.download_path, { as: "user:admin" });
      expect(file.status).toBe(200);
      expect(file.headers.get("content-type")).toBe("text/plain");
      expect(file.headers.get("content-disposition")).toBe(`attachment; filename="minutes.txt"; filename*=UTF-8''minutes.txt`);
      expect(await file.text()).toBe(text);
    } finally {
      ws.close();
    }
  });

  test("a refused file never reaches Synapse or Element", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const form = new FormData();
    form.append("file", new Blob(["<html>"], { type: "text/html" }), "page.html");
    const res = await server.api(`/api/messaging/channels/${channel.id}/files`, { method: "POST", as: "user:alice", body: form });
    expect(res.status).toBe(415);
    const listed = await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:admin" })).json();
    expect(listed).toEqual([]);
  });
});
