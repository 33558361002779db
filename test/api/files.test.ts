import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

const MAX = 4096;
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ MAX_UPLOAD_BYTES: String(MAX) });
}, 60000);
afterAll(() => server?.stop(), 60000);

// A 3x2 PNG: the header is all imageSize reads.
const png = () => {
  const bytes = new Uint8Array(64);
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 3, 0, 0, 0, 2]);
  for (let i = 24; i < 64; i++) bytes[i] = i;
  return bytes;
};

function upload(channelId: string, as: string, parts: { file?: Blob; filename?: string; text?: string; thread_id?: string }) {
  const form = new FormData();
  if (parts.file) form.append("file", parts.file, parts.filename ?? "file.bin");
  if (parts.text) form.append("text", parts.text);
  if (parts.thread_id) form.append("thread_id", parts.thread_id);
  return server.api(`/api/messaging/channels/${channelId}/files`, { method: "POST", as, body: form });
}

describe("files (local backend)", () => {
  test("an image upload becomes an m.image with an mxc url, on the socket and in the listing, and downloads byte for byte", async () => {
    const channel = await createChannel(server, "user:admin");
    const ws = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:admin" });
    const published: Array<{ subject: string; payload: any }> = [];
    const unsubscribe = server.app.deps.events.subscribe((e) => published.push(e));
    const bytes = png();
    const res = await upload(channel.id, "user:admin", { file: new Blob([bytes], { type: "image/png" }), filename: "pixel.png", text: "look at this" });
    expect(res.status).toBe(201);
    const msg = await res.json();
    expect(msg).toMatchObject({
      seq: 1,
      content_type: "image",
      msgtype: "m.image",
      content_preview: "look at this",
      status: "sent",
      media: { mimetype: "image/png", size: 64, filename: "pixel.png", download_path: `/api/messaging/channels/${channel.id}/messages/${msg.id}/file` },
    });
    expect(msg.media.url).toMatch(/^mxc:\/\/daarion\.city\/[A-Za-z0-9_-]+$/);
    unsubscribe();
    expect(published).toEqual([
      { subject: "messaging.message.created", payload: expect.objectContaining({ message_id: msg.id, seq: 1, preview: "look at this" }) },
    ]);

    const frame = await ws.nextJson();
    expect(frame).toMatchObject({ type: "message.created", seq: 1, message: { id: msg.id, media: { url: msg.media.url } } });
    ws.close();

    const [event] = await server.app.deps.sql`select content from local_matrix_events where event_id = ${msg.matrix_event_id}`;
    expect(event!.content).toEqual({
      msgtype: "m.image",
      body: "look at this",
      filename: "pixel.png",
      url: msg.media.url,
      info: { mimetype: "image/png", size: 64, w: 3, h: 2 },
    });

    const listed = await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:bob" })).json();
    expect(listed[0]).toMatchObject({ id: msg.id, media: { url: msg.media.url, size: 64 } });

    const file = await server.api(msg.media.download_path, { as: "user:bob" });
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toBe("image/png");
    expect(file.headers.get("content-disposition")).toBe(`inline; filename="pixel.png"; filename*=UTF-8''pixel.png`);
    expect(file.headers.get("x-content-type-options")).toBe("nosniff");
    expect(new Uint8Array(await file.arrayBuffer())).toEqual(bytes);
  });

  test("msgtype follows the type: pdf is m.file (the name is the body), audio m.audio, video m.video; a thread_id posts into the thread", async () => {
    const channel = await createChannel(server, "user:admin");
    const root = await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "root" } })).json();
    const pdf = await upload(channel.id, "user:admin", { file: new Blob(["%PDF-1.4 report"], { type: "application/pdf" }), filename: "Отчёт 2026.pdf", thread_id: root.id });
    expect(pdf.status).toBe(201);
    const pdfMsg = await pdf.json();
    expect(pdfMsg).toMatchObject({ msgtype: "m.file", content_type: "file", content_preview: "Отчёт 2026.pdf", thread_id: root.id });
    const dl = await server.api(pdfMsg.media.download_path, { as: "user:admin" });
    expect(dl.headers.get("content-type")).toBe("application/pdf");
    expect(dl.headers.get("content-disposition")).toBe(`attachment; filename="_____ 2026.pdf"; filename*=UTF-8''${encodeURIComponent("Отчёт 2026.pdf")}`);
    expect(await dl.text()).toBe("%PDF-1.4 report");

    const audio = await (await upload(channel.id, "user:admin", { file: new Blob(["ogg"], { type: "audio/ogg" }), filename: "a.ogg" })).json();
    expect(audio).toMatchObject({ msgtype: "m.audio", content_type: "audio" });
    const video = await (await upload(channel.id, "user:admin", { file: new Blob(["mp4"], { type: "video/mp4" }), filename: "v.mp4" })).json();
    expect(video).toMatchObject({ msgtype: "m.video", content_type: "video" });
  });

  test("too large is 413 FILE_TOO_LARGE, a refused type 415, no file 400, and none of them writes anything", async () => {
    const channel = await createChannel(server, "user:admin");
    const big = await upload(channel.id, "user:admin", { file: new Blob([new Uint8Array(MAX + 1)], { type: "image/png" }), filename: "big.png" });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: "FILE_TOO_LARGE" });

    // Far beyond the limit, refused on the declared length without reading the body.
    const huge = await upload(channel.id, "user:admin", { file: new Blob([new Uint8Array(MAX * 100)], { type: "image/png" }), filename: "huge.png" });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: "FILE_TOO_LARGE" });

    // A streamed body with no Content-Length is cut off once it crosses the limit.
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(MAX * 100)], { type: "image/png" }), "stream.png");
    const encoded = new Response(form);
    const streamed = await fetch(`${server.url}/api/messaging/channels/${channel.id}/files`, {
      method: "POST",
      headers: { "x-user-id": "user:admin", "content-type": encoded.headers.get("content-type")! },
      body: encoded.body,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await streamed.json()).toMatchObject({ error: "FILE_TOO_LARGE" });

    const html = await upload(channel.id, "user:admin", { file: new Blob(["<script>"], { type: "text/html" }), filename: "x.html" });
    expect(html.status).toBe(415);
    expect(await html.json()).toMatchObject({ error: "UNSUPPORTED_MEDIA_TYPE" });

    const anonymous = await server.api(`/api/messaging/channels/${channel.id}/files`, { method: "POST", body: new FormData() });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: "UNAUTHENTICATED" });

    const none = await upload(channel.id, "user:admin", { text: "no file" });
    expect(none.status).toBe(400);
    expect(await none.json()).toMatchObject({ error: "FILE_REQUIRED" });

    const json = await server.api(`/api/messaging/channels/${channel.id}/files`, { method: "POST", as: "user:admin", json: { text: "x" } });
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ error: "FILE_REQUIRED" });

    const [{ n }] = (await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channel.id}`) as unknown as [{ n: number }];
    expect(n).toBe(0);
    const [{ m }] = (await server.app.deps.sql`select count(*)::int as m from local_matrix_media where filename in ('big.png', 'huge.png', 'stream.png', 'x.html')`) as unknown as [{ m: number }];
    expect(m).toBe(0);
  });

  test("hidden channels are 404 for upload and download; a non-member agent may not upload; a plain message has no file", async () => {
    const priv = await createChannel(server, "user:admin", { visibility: "private" });
    const ok = await (await upload(priv.id, "user:admin", { file: new Blob(["hi"], { type: "text/plain" }), filename: "hi.txt" })).json();
    expect((await upload(priv.id, "user:eve", { file: new Blob(["x"], { type: "text/plain" }), filename: "x.txt" })).status).toBe(404);
    const hidden = await server.api(ok.media.download_path, { as: "user:eve" });
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toMatchObject({ error: "NOT_FOUND" });
    expect((await server.api(ok.media.download_path, { as: "user:admin" })).status).toBe(200);
    expect((await server.api(ok.media.download_path)).status).toBe(401);

    const pub = await createChannel(server, "user:admin");
    const agent = await upload(pub.id, "agent:stranger", { file: new Blob(["x"], { type: "text/plain" }), filename: "x.txt" });
    expect(agent.status).toBe(403);
    const text = await (await server.api(`/api/messaging/channels/${pub.id}/messages`, { method: "POST", as: "user:admin", json: { text: "plain" } })).json();
    expect(text.media).toBeNull();
    expect((await server.api(`/api/messaging/channels/${pub.id}/messages/${text.id}/file`, { as: "user:admin" })).status).toBe(404);
  });

  test("a media message written straight into Matrix (as Element would) is indexed with its mxc url and downloadable", async () => {
    const channel = await createChannel(server, "user:admin");
    const matrix = server.app.deps.matrix;
    const bob = "@bob:elsewhere.example";
    await matrix.ensureUser(bob);
    await matrix.join(channel.matrix_room_id, bob);
    const { contentUri } = await matrix.uploadMedia(bob, new TextEncoder().encode("notes from element"), "text/plain", "notes.txt");
    const ws = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:admin" });
    await matrix.sendEvent(channel.matrix_room_id, bob, "m.room.message", { msgtype: "m.file", body: "notes.txt", url: contentUri, info: { mimetype: "text/plain", size: 18 } }, "element-txn-1");
    let frame = await ws.nextJson(10000);
    while (frame.type !== "message.created") frame = await ws.nextJson(10000);
    ws.close();
    expect(frame.message).toMatchObject({ sender_id: `matrix:${bob}`, content_type: "file", media: { url: contentUri, mimetype: "text/plain", size: 18, filename: "notes.txt" } });
    const dl = await server.api(frame.message.media.download_path, { as: "user:admin" });
    expect(dl.status).toBe(200);
    expect(dl.headers.get("content-type")).toBe("text/plain");
    expect(await dl.text()).toBe("notes from element");
  });
});
