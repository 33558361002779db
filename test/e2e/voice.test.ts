import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv, nextRoomEvent } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { voiceFixture } from "../helpers/voice.ts";

/** Voice messages both ways between the service and a Matrix client (matrix-js-sdk plays Element) on a real Synapse. */
setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("voice messages (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bobvoice");
    client = await elementClient(bob);
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  test("a REST voice upload reaches Element as its voice message (m.audio, msc3245.voice, msc1767.audio with duration and waveform), and Bob can play the file", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const bytes = await voiceFixture();
    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().msgtype === "m.audio");
    const form = new FormData();
    form.append("file", new Blob([bytes], { type: "audio/ogg" }), "Voice message.ogg");
    form.append("voice", "true");
    const res = await server.api(`/api/messaging/channels/${channel.id}/files`, { method: "POST", as: "user:alice", body: form });
    expect(res.status).toBe(201);
    const msg = await res.json();
    expect(msg).toMatchObject({ content_type: "voice", msgtype: "m.audio" });
    expect(Math.abs(msg.voice.duration_ms - 2000)).toBeLessThanOrEqual(5);

    const event = await seen;
    expect(event.getId()).toBe(msg.matrix_event_id);
    expect(event.getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    const content = event.getContent();
    expect(content).toEqual({
      msgtype: "m.audio",
      body: "Voice message",
      url: msg.media.url,
      info: { mimetype: "audio/ogg", size: bytes.byteLength, duration: msg.voice.duration_ms },
      "org.matrix.msc1767.text": "Voice message",
      "org.matrix.msc1767.file": { url: msg.media.url, name: "Voice message.ogg", mimetype: "audio/ogg", size: bytes.byteLength },
      "org.matrix.msc1767.audio": { duration: msg.voice.duration_ms, waveform: msg.voice.waveform },
      "org.matrix.msc3245.voice": {},
    });
    // What Element draws: 100 integers 0..1024, silent for the first second, loud for the second.
    const waveform = content["org.matrix.msc1767.audio"].waveform as number[];
    expect(waveform).toHaveLength(100);
    expect(waveform.every((v) => Number.isInteger(v) && v >= 0 && v <= 1024)).toBe(true);
    expect(Math.max(...waveform.slice(0, 48))).toBeLessThanOrEqual(16);
    expect(Math.min(...waveform.slice(52))).toBeGreaterThan(900);

    const [serverName, mediaId] = msg.media.url.slice("mxc://".length).split("/");
    const download = await fetch(`${synapse!.url}/_matrix/client/v1/media/download/${serverName}/${mediaId}`, {
      headers: { authorization: `Bearer ${bob.accessToken}` },
    });
    expect(download.status).toBe(200);
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(bytes);
  });

  test("a voice message Bob records in Element syncs back as content_type voice with its duration and waveform (frame, listing, index)", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const ws = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:admin" });
    try {
      const bytes = await voiceFixture();
      const { content_uri } = await client.uploadContent(new Blob([bytes], { type: "audio/ogg" }), { name: "Voice message.ogg", type: "audio/ogg" });
      // Element's createVoiceMessageContent, with its 39-point playback waveform scaled to 0..1024.
      const waveform = Array.from({ length: 39 }, (_, i) => (i < 19 ? 0 : 1024 - i));
      const { event_id } = await client.sendMessage(channel.matrix_room_id, {
        body: "Voice message",
        msgtype: "m.audio",
        url: content_uri,
        info: { duration: 2000, mimetype: "audio/ogg", size: bytes.byteLength },
        "org.matrix.msc1767.text": "Voice message",
        "org.matrix.msc1767.file": { url: content_uri, name: "Voice message.ogg", mimetype: "audio/ogg", size: bytes.byteLength },
        "org.matrix.msc1767.audio": { duration: 2000, waveform },
        "org.matrix.msc3245.voice": {},
      } as never);
      let frame = await ws.nextJson(20000);
      while (frame.type !== "message.created" || frame.message.matrix_event_id !== event_id) frame = await ws.nextJson(20000);
      expect(frame.message).toMatchObject({
        sender_id: `matrix:${bob.userId}`,
        content_type: "voice",
        msgtype: "m.audio",
        content_preview: "Voice message",
        voice: { duration_ms: 2000, waveform },
        media: { url: content_uri, mimetype: "audio/ogg", size: bytes.byteLength, filename: "Voice message.ogg" },
      });
      const listed = await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:admin" })).json();
      expect(listed.find((m: { matrix_event_id: string }) => m.matrix_event_id === event_id)).toMatchObject({ content_type: "voice", voice: { duration_ms: 2000, waveform } });
      const [row] = await server.app.deps.sql`select content_type, voice_duration_ms, voice_waveform from messages where matrix_event_id = ${event_id}`;
      expect(row).toEqual({ content_type: "voice", voice_duration_ms: 2000, voice_waveform: waveform });
      const file = await server.api(frame.message.media.download_path, { as: "user:admin" });
      expect(file.status).toBe(200);
      expect(new Uint8Array(await file.arrayBuffer())).toEqual(bytes);
    } finally {
      ws.close();
    }
  });

  test("a recording the service cannot read never reaches Synapse or Element", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const firstMessage = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.message");
    const bytes = await voiceFixture();
    const form = new FormData();
    form.append("file", new Blob([bytes.slice(0, 3000)], { type: "audio/ogg" }), "broken.ogg");
    form.append("voice", "true");
    const res = await server.api(`/api/messaging/channels/${channel.id}/files`, { method: "POST", as: "user:alice", body: form });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ error: "INVALID_VOICE_FILE" });
    expect(await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:admin" })).json()).toEqual([]);
    // The next message Bob sees in the room is the one sent after the refusal.
    const after = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "after the refusal" } });
    expect(after.status).toBe(201);
    expect((await firstMessage).getContent()).toMatchObject({ msgtype: "m.text", body: "after the refusal" });
  });
});
