import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { localMatrixUser } from "../helpers/local-matrix-user.ts";
import { voiceFixture, wavBytes } from "../helpers/voice.ts";
import { toMessageView } from "../../src/store/views.ts";
import type { MessageRow } from "../../src/store/rows.ts";

/** Voice messages on the embedded default (the local Matrix backend). */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ VOICE_MAX_DURATION_MS: "60000" });
}, 60000);
afterAll(() => server?.stop(), 60000);

function uploadVoice(channelId: string, as: string, file: Blob, filename: string, extra: Record<string, string> = { voice: "true" }) {
  const form = new FormData();
  form.append("file", file, filename);
  for (const [key, value] of Object.entries(extra)) form.append(key, value);
  return server.api(`/api/messaging/channels/${channelId}/files`, { method: "POST", as, body: form });
}

async function nextMessageFrame(ws: WsInbox, eventId?: string) {
  let frame = await ws.nextJson(10000);
  while (frame.type !== "message.created" || (eventId && frame.message.matrix_event_id !== eventId)) frame = await ws.nextJson(10000);
  return frame;
}

/** The waveform of the fixture: silent for its first second, the tone's full height for its second. */
function expectSilenceThenTone(waveform: number[]) {
  expect(waveform).toHaveLength(100);
  expect(Math.max(...waveform.slice(0, 48))).toBeLessThanOrEqual(16);
  expect(Math.min(...waveform.slice(52))).toBeGreaterThan(900);
}

describe("voice messages (local backend)", () => {
  test("an Ogg/Opus upload with voice=true is sent as Element's voice message, with its duration and waveform in the view, the frame and the index", async () => {
    const channel = await createChannel(server, "user:admin");
    const ws = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:admin" });
    const bytes = await voiceFixture();
    const res = await uploadVoice(channel.id, "user:admin", new Blob([bytes], { type: "audio/ogg" }), "recording.ogg");
    expect(res.status).toBe(201);
    const msg = await res.json();
    expect(msg).toMatchObject({
      content_type: "voice",
      msgtype: "m.audio",
      content_preview: "Voice message",
      media: { mimetype: "audio/ogg", size: bytes.byteLength, filename: "recording.ogg" },
    });
    expect(Math.abs(msg.voice.duration_ms - 2000)).toBeLessThanOrEqual(5);
    expectSilenceThenTone(msg.voice.waveform);

    const frame = await nextMessageFrame(ws);
    ws.close();
    expect(frame.message).toMatchObject({ id: msg.id, content_type: "voice", voice: msg.voice });

    const [event] = await server.app.deps.sql`select content from local_matrix_events where event_id = ${msg.matrix_event_id}`;
    expect(event!.content).toEqual({
      msgtype: "m.audio",
      body: "Voice message",
      url: msg.media.url,
      info: { mimetype: "audio/ogg", size: bytes.byteLength, duration: msg.voice.duration_ms },
      "org.matrix.msc1767.text": "Voice message",
      "org.matrix.msc1767.file": { url: msg.media.url, name: "recording.ogg", mimetype: "audio/ogg", size: bytes.byteLength },
      "org.matrix.msc1767.audio": { duration: msg.voice.duration_ms, waveform: msg.voice.waveform },
      "org.matrix.msc3245.voice": {},
    });

    const [row] = await server.app.deps.sql`select content_type, voice_duration_ms, voice_waveform from messages where id = ${msg.id}`;
    expect(row).toEqual({ content_type: "voice", voice_duration_ms: msg.voice.duration_ms, voice_waveform: msg.voice.waveform });

    const listed = await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:bob" })).json();
    expect(listed[0]).toMatchObject({ id: msg.id, content_type: "voice", voice: msg.voice });
    const detail = await (await server.api(`/api/messaging/channels/${channel.id}/messages/${msg.id}`, { as: "user:bob" })).json();
    expect(detail).toMatchObject({ voice: msg.voice, content: { "org.matrix.msc3245.voice": {} } });

    const file = await server.api(msg.media.download_path, { as: "user:bob" });
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toBe("audio/ogg");
    expect(new Uint8Array(await file.arrayBuffer())).toEqual(bytes);

    // Deleted (a redaction), it keeps no waveform.
    expect((await server.api(`/api/messaging/channels/${channel.id}/messages/${msg.id}`, { method: "DELETE", as: "user:admin" })).status).toBe(200);
    const [gone] = await server.app.deps.sql<MessageRow[]>`select * from messages where id = ${msg.id}`;
    expect(gone).toMatchObject({ content_type: "voice", voice_duration_ms: null, voice_waveform: null });
    expect(toMessageView(gone!).voice).toBeNull();
  });

  test("a caption is the body; without voice=true the same file stays a plain m.audio (voice null)", async () => {
    const channel = await createChannel(server, "user:admin");
    const bytes = await voiceFixture();
    const captioned = await (await uploadVoice(channel.id, "user:admin", new Blob([bytes], { type: "audio/ogg" }), "memo.ogg", { voice: "true", text: "listen" })).json();
    expect(captioned).toMatchObject({ content_type: "voice", content_preview: "listen", media: { filename: "memo.ogg" } });
    const [event] = await server.app.deps.sql`select content from local_matrix_events where event_id = ${captioned.matrix_event_id}`;
    expect(event!.content).toMatchObject({ body: "listen", "org.matrix.msc1767.text": "listen", filename: "memo.ogg" });

    const plain = await (await uploadVoice(channel.id, "user:admin", new Blob([bytes], { type: "audio/ogg" }), "song.ogg", { voice: "false" })).json();
    expect(plain).toMatchObject({ content_type: "audio", msgtype: "m.audio", voice: null });
  });

  test("another format is 415 UNSUPPORTED_VOICE_FORMAT, a damaged recording 422 INVALID_VOICE_FILE, and none of them stores or sends anything", async () => {
    const channel = await createChannel(server, "user:admin");
    const bytes = await voiceFixture();
    const cases: Array<[Blob, string, number, string]> = [
      [new Blob([wavBytes(0.5)], { type: "audio/wav" }), "refused-1.wav", 415, "UNSUPPORTED_VOICE_FORMAT"],
      [new Blob([wavBytes(0.5)], { type: "audio/ogg" }), "refused-2.ogg", 415, "UNSUPPORTED_VOICE_FORMAT"],
      [new Blob(["just text"], { type: "text/plain" }), "refused-3.txt", 415, "UNSUPPORTED_VOICE_FORMAT"],
      [new Blob([bytes.slice(0, bytes.byteLength >> 1)], { type: "audio/ogg" }), "refused-4.ogg", 422, "INVALID_VOICE_FILE"],
    ];
    for (const [file, name, status, error] of cases) {
      const res = await uploadVoice(channel.id, "user:admin", file, name);
      expect({ name, status: res.status }).toEqual({ name, status });
      const body = await res.json();
      expect(body).toMatchObject({ error });
      expect(typeof body.message).toBe("string");
    }
    const [{ n }] = (await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channel.id}`) as unknown as [{ n: number }];
    expect(n).toBe(0);
    const [{ m }] = (await server.app.deps.sql`select count(*)::int as m from local_matrix_media where filename like 'refused-%'`) as unknown as [{ m: number }];
    expect(m).toBe(0);
  });

  test("a voice message a Matrix client sends (Element's content) is indexed as voice with its duration and waveform", async () => {
    const channel = await createChannel(server, "user:admin");
    const send = await localMatrixUser(server, channel.matrix_room_id, "voicecarol");
    const { contentUri } = await server.app.deps.matrix.uploadMedia("@voicecarol:daarion.city", await voiceFixture(), "audio/ogg", "Voice message.ogg");
    const ws = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:admin" });
    const waveform = Array.from({ length: 39 }, (_, i) => i * 26);
    const eventId = await send({
      body: "Voice message",
      msgtype: "m.audio",
      url: contentUri,
      info: { duration: 2000, mimetype: "audio/ogg", size: 6887 },
      "org.matrix.msc1767.text": "Voice message",
      "org.matrix.msc1767.file": { url: contentUri, name: "Voice message.ogg", mimetype: "audio/ogg", size: 6887 },
      "org.matrix.msc1767.audio": { duration: 2000, waveform },
      "org.matrix.msc3245.voice": {},
    });
    const frame = await nextMessageFrame(ws, eventId);
    // A plain m.audio from the same client is no voice message.
    const plainId = await send({ body: "song.ogg", msgtype: "m.audio", url: contentUri, info: { mimetype: "audio/ogg", size: 6887 } });
    const plain = await nextMessageFrame(ws, plainId);
    ws.close();
    expect(frame.message).toMatchObject({
      content_type: "voice",
      msgtype: "m.audio",
      content_preview: "Voice message",
      voice: { duration_ms: 2000, waveform },
      media: { url: contentUri, mimetype: "audio/ogg", size: 6887, filename: "Voice message.ogg" },
    });
    expect(plain.message).toMatchObject({ content_type: "audio", voice: null });
    const listed = await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:admin" })).json();
    expect(listed.find((m: { matrix_event_id: string }) => m.matrix_event_id === eventId)).toMatchObject({ voice: { duration_ms: 2000, waveform } });
  });

  test("the API documents show the voice field of uploads, the 422 refusal and the voice view in messages and frames", async () => {
    const doc = (await (await fetch(`${server.url}/docs/json`)).json()) as any;
    const upload = doc.paths["/api/messaging/channels/{id}/files"].post;
    expect(upload.requestBody.content["multipart/form-data"].schema.properties.voice.description).toContain("org.matrix.msc3245.voice");
    expect(upload.responses["422"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Error" });
    expect(upload.responses["415"]).toBeDefined();
    const voice = doc.components.schemas.Message.properties.voice;
    expect(voice.type).toEqual(["object", "null"]);
    expect(Object.keys(voice.properties).sort()).toEqual(["duration_ms", "waveform"]);
    expect(voice.properties.waveform).toMatchObject({ type: "array", items: { minimum: 0, maximum: 1024 } });
    const asyncapi = (await (await fetch(`${server.url}/docs/asyncapi.json`)).json()) as any;
    expect(asyncapi.components.messages["server.message.created"].payload.properties.message).toEqual({ $ref: "#/components/schemas/MessageView" });
    const framed = asyncapi.components.schemas.MessageView.properties.voice.anyOf.find((s: { type: string }) => s.type === "object");
    expect(Object.keys(framed.properties).sort()).toEqual(["duration_ms", "waveform"]);
  });
});
