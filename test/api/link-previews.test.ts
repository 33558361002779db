import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "nats";
import { createChannel, startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { PublishedLog } from "../helpers/published.ts";
import { natsUrl, serviceMissing } from "../helpers/services.ts";
import { localMatrixClient } from "../helpers/local-matrix-user.ts";

/**
 * Link previews on the embedded default: the local Matrix backend's built-in fetcher against a
 * page server of the test's own (outside the system, on 127.0.0.1, which the service is told to
 * allow with LINK_PREVIEW_ALLOWED_ADDRESSES). Frames, REST, the index, NATS, the guard, the
 * limits, opt-out, confidential channels, the cache, Matrix clients' messages (MSC4095), edits.
 */
setDefaultTimeout(30_000);

// A 40×20 PNG header: enough for a content type and a size.
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 40, 0, 0, 0, 20, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde]);
const html = (head: string) => new Response(`<!doctype html><html><head><meta charset="utf-8">${head}</head><body><p>Hello</p></body></html>`, { headers: { "content-type": "text/html; charset=utf-8" } });
const article = (title: string) =>
  html(
    `<title>Plain title</title><meta property="og:title" content="${title}"><meta property="og:description" content="Sand, sea &amp; a  long\n walk."><meta property="og:site_name" content="Seaside News"><meta property="og:image" content="/og.png">`,
  );

/** What the page server was asked, by path, and what the huge page sent before it was cut off. */
const hits = new Map<string, number>();
const huge = { sent: 0, cancelled: false };
const HUGE_TOTAL = 64 * 1024 * 1024;
let pages: ReturnType<typeof Bun.serve>;
let base = "";

function startPages() {
  pages = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch(req) {
      const { pathname } = new URL(req.url);
      hits.set(pathname, (hits.get(pathname) ?? 0) + 1);
      if (pathname.startsWith("/article") || pathname.startsWith("/shared") || pathname.startsWith("/edit-")) return article(`Title of ${pathname}`);
      if (pathname === "/og.png" || pathname === "/photo.png") return new Response(PNG, { headers: { "content-type": "image/png" } });
      if (pathname === "/title-only") return html("<title>  Only a\ttitle </title>");
      if (pathname === "/nothing") return html("");
      if (pathname === "/hop1") return Response.redirect(`${base}/hop2`, 302);
      if (pathname === "/hop2") return new Response(null, { status: 301, headers: { location: "/article-after-hops" } });
      if (pathname.startsWith("/loop/")) return Response.redirect(`${base}/loop/${Number(pathname.slice(6)) + 1}`, 302);
      if (pathname === "/to-metadata") return Response.redirect("http://169.254.169.254/latest/meta-data/", 302);
      if (pathname === "/to-private") return new Response(null, { status: 307, headers: { location: "http://10.0.0.1:8080/admin" } });
      if (pathname === "/data.json") return Response.json({ title: "not a page" });
      if (pathname === "/huge") {
        const chunk = new Uint8Array(64 * 1024).fill(0x61);
        let first = true;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (first) {
              first = false;
              controller.enqueue(new TextEncoder().encode('<html><head><meta property="og:title" content="A huge page"></head><body>'));
              return;
            }
            if (huge.sent >= HUGE_TOTAL) return controller.close();
            huge.sent += chunk.byteLength;
            controller.enqueue(chunk);
          },
          cancel() {
            huge.cancelled = true;
          },
        });
        return new Response(body, { headers: { "content-type": "text/html" } });
      }
      if (pathname === "/slow") {
        // The head, and then nothing, ever.
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('<html><head><meta property="og:title" content="Never finished">'));
          },
        });
        return new Response(body, { headers: { "content-type": "text/html" } });
      }
      return new Response("not found", { status: 404 });
    },
  });
  base = `http://127.0.0.1:${pages.port}`;
}

let server: TestServer;
const log = new PublishedLog();

beforeAll(async () => {
  startPages();
  server = await startTestServer({ LINK_PREVIEW_ALLOWED_ADDRESSES: "127.0.0.1", LINK_PREVIEW_TIMEOUT_MS: "1500" });
  log.record(server.app.deps.events);
}, 60000);
afterAll(async () => {
  await server?.stop();
  pages?.stop(true);
}, 60000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
const post = async (channelId: string, json: Record<string, unknown>, as = "user:alice") => {
  const res = await api(`/${channelId}/messages`, { method: "POST", as, json });
  expect(res.status).toBe(201);
  return res.json();
};
const row = async (messageId: string) => {
  const [r] = await server.app.deps.sql`select link_preview_url, link_preview, link_previews_off from messages where id = ${messageId}`;
  return r as { link_preview_url: string | null; link_preview: Record<string, unknown> | null; link_previews_off: boolean };
};
const jobs = async (messageId: string) => (await server.app.deps.sql`select url from link_preview_jobs where message_id = ${messageId}`).map((r) => r.url as string);
const cached = async (url: string) => {
  const [r] = await server.app.deps.sql`select preview, failed from link_preview_cache where url = ${url}`;
  return r as { preview: unknown; failed: boolean } | undefined;
};

/** Resolves once the message wants no preview any more (its job is done, with or without one); no sleeping. */
async function jobDone(messageId: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await jobs(messageId)).length > 0) {
    if (Date.now() > deadline) throw new Error(`the preview job of ${messageId} did not finish`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The message.updated frame that brings the message's preview. */
async function previewFrame(inbox: WsInbox, messageId: string) {
  for (;;) {
    const frame = await inbox.nextOfType("message.updated", 15_000);
    if (frame.message.id === messageId && frame.message.link_preview) return frame;
  }
}

const matrixClientIn = (roomId: string, localpart = "eve") => localMatrixClient(server, roomId, localpart);

async function messageOfEvent(eventId: string, timeoutMs = 10_000): Promise<{ id: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await server.app.deps.sql`select id from messages where matrix_event_id = ${eventId}`;
    if (r) return r as { id: string };
    if (Date.now() > deadline) throw new Error(`${eventId} was not indexed`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("link previews from the API", () => {
  test("a message with a link: message.updated brings the preview (frame, NATS event, REST, the index), its image streams through the service", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const link = `${base}/article-1?utm=x#top`;
    const message = await post(channel.id, { text: `Look at this: ${link}.` });
    expect(message.link_preview).toBeNull();
    expect((await inbox.nextOfType("message.created")).message.link_preview).toBeNull();

    const frame = await previewFrame(inbox, message.id);
    inbox.close();
    // Read before any assertion: Bun's toMatchObject writes its matchers into what it matched.
    const imageUrl: string = frame.message.link_preview.image_url;
    expect(imageUrl).toMatch(/^mxc:\/\/daarion\.city\/[A-Za-z0-9_-]+$/);
    const preview = {
      url: link,
      title: "Title of /article-1",
      description: "Sand, sea & a long walk.",
      site_name: "Seaside News",
      image_url: imageUrl,
      image_width: 40,
      image_height: 20,
      image_download_path: `/api/messaging/channels/${channel.id}/messages/${message.id}/link-preview/image`,
    };
    expect(frame).toMatchObject({ type: "message.updated", seq: message.seq, message: { id: message.id, content_preview: `Look at this: ${link}.`, link_preview: preview } });

    const event = await log.next("messaging.message.updated", (p) => p.message_id === message.id && p.change === "link_preview");
    expect(event).toEqual({
      event_id: `message.updated:link_preview:${message.id}:v1`,
      channel_id: channel.id,
      message_id: message.id,
      seq: message.seq,
      matrix_event_id: message.matrix_event_id,
      editor_id: "system:link-preview",
      version: 1,
      preview: `Look at this: ${link}.`,
      edited_at: message.created_at,
      change: "link_preview",
      link_preview: preview,
    });

    const listed = await (await api(`/${channel.id}/messages`, { as: "user:bob" })).json();
    expect(listed[0]).toMatchObject({ id: message.id, link_preview: preview });
    expect((await (await api(`/${channel.id}/messages/${message.id}`, { as: "user:bob" })).json()).link_preview).toMatchObject(preview);
    // The fragment never reaches the page server; the link as written is kept.
    const { image_download_path: _path, ...stored } = preview;
    expect(await row(message.id)).toEqual({ link_preview_url: link, link_preview: stored, link_previews_off: false });
    expect(await jobs(message.id)).toEqual([]);
    expect((await cached(`${base}/article-1?utm=x`))?.failed).toBe(false);

    const image = await server.api(preview.image_download_path, { as: "user:bob" });
    expect(image.status).toBe(200);
    expect(image.headers.get("content-type")).toBe("image/png");
    expect(image.headers.get("x-content-type-options")).toBe("nosniff");
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(PNG);
    expect((await server.api(`/api/messaging/channels/${channel.id}/messages/${message.id}/link-preview/image`)).status).toBe(401);
  });

  test("a page with only a <title> previews its title; a page with nothing gets none; a link to an image previews the image", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const titled = await post(channel.id, { text: `${base}/title-only` });
    expect((await previewFrame(inbox, titled.id)).message.link_preview).toMatchObject({ title: "Only a title", description: null, site_name: null, image_url: null, image_download_path: null });
    const photo = await post(channel.id, { text: `(see ${base}/photo.png)` });
    expect((await previewFrame(inbox, photo.id)).message.link_preview).toMatchObject({ url: `${base}/photo.png`, title: null, image_url: expect.stringMatching(/^mxc:/), image_width: 40, image_height: 20 });
    inbox.close();
    const nothing = await post(channel.id, { text: `${base}/nothing` });
    await jobDone(nothing.id);
    expect(await row(nothing.id)).toMatchObject({ link_preview_url: `${base}/nothing`, link_preview: null });
    expect(await cached(`${base}/nothing`)).toEqual({ preview: null, failed: false });
  });

  test("redirects are followed by hand, each target checked again: a hop within the allow-list works; one to a private or metadata address, or a fourth one, is refused", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const hopped = await post(channel.id, { text: `${base}/hop1` });
    expect((await previewFrame(inbox, hopped.id)).message.link_preview).toMatchObject({ url: `${base}/hop1`, title: "Title of /article-after-hops" });
    inbox.close();

    for (const path of ["/to-metadata", "/to-private", "/loop/1"]) {
      const message = await post(channel.id, { text: `${base}${path}` });
      await jobDone(message.id);
      expect((await row(message.id)).link_preview).toBeNull();
      expect(await cached(`${base}${path}`)).toEqual({ preview: null, failed: true });
    }
    // Three redirects are followed, the fourth is not.
    expect([1, 2, 3, 4].map((n) => hits.get(`/loop/${n}`) ?? 0)).toEqual([1, 1, 1, 1]);
    expect(hits.get("/loop/5")).toBeUndefined();
  });

  test("limits: a huge page is read up to LINK_PREVIEW_MAX_BYTES and no further; a slow page runs out of time; a JSON document gets no preview", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const big = await post(channel.id, { text: `${base}/huge` });
    expect((await previewFrame(inbox, big.id)).message.link_preview).toMatchObject({ title: "A huge page" });
    inbox.close();
    expect(huge.cancelled).toBe(true);
    // What the sockets' buffers took before the fetcher hung up: far from all of it.
    expect(huge.sent).toBeLessThan(HUGE_TOTAL / 4);

    const started = Date.now();
    const slow = await post(channel.id, { text: `${base}/slow` });
    await jobDone(slow.id);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await cached(`${base}/slow`)).toEqual({ preview: null, failed: true });
    expect((await row(slow.id)).link_preview).toBeNull();

    const json = await post(channel.id, { text: `${base}/data.json` });
    await jobDone(json.id);
    expect((await row(json.id)).link_preview).toBeNull();
    expect((await cached(`${base}/data.json`))?.failed).toBe(true);
  });

  test("opt-out: link_preview false wants none, fetches nothing, and tells Matrix clients (com.beeper.linkpreviews: []); an agent may opt out too", async () => {
    const channel = await createChannel(server, "user:owner");
    const message = await post(channel.id, { text: `${base}/article-optout`, link_preview: false });
    expect(await row(message.id)).toEqual({ link_preview_url: null, link_preview: null, link_previews_off: true });
    expect(await jobs(message.id)).toEqual([]);
    const [event] = await server.app.deps.sql`select content from local_matrix_events where event_id = ${message.matrix_event_id}`;
    expect(event!.content).toEqual({ msgtype: "m.text", body: `${base}/article-optout`, "com.beeper.linkpreviews": [] });

    await api(`/${channel.id}/members`, { method: "POST", as: "user:owner", json: { member_id: "agent:sofia" } });
    const posted = await server.api("/internal/agents/agent:sofia/post-to-channel", { method: "POST", json: { channel_id: channel.id, text: `${base}/article-optout`, link_preview: false } });
    expect(posted.status).toBe(200);
    expect(await row((await posted.json()).message_id)).toMatchObject({ link_preview_url: null, link_previews_off: true });
    expect(hits.get("/article-optout")).toBeUndefined();

    const bad = await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "x", link_preview: "no" } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toBe("VALIDATION_FAILED");
  });

  test("a confidential channel never gets a preview, even for a plaintext message from a Matrix client", async () => {
    const res = await api("", {
      method: "POST",
      as: "user:owner",
      json: { slug: uniqueSlug("secret"), name: "Secret", microdao_id: "microdao:daarion", visibility: "public", is_encrypted: true },
    });
    const secret = await res.json();
    const eve = await matrixClientIn(secret.matrix_room_id);
    const eventId = await eve.send({ msgtype: "m.text", body: `${base}/article-secret` });
    const message = await messageOfEvent(eventId);
    expect(await row(message.id)).toEqual({ link_preview_url: null, link_preview: null, link_previews_off: false });
    expect(await jobs(message.id)).toEqual([]);
    expect(hits.get("/article-secret")).toBeUndefined();
    // And the API refuses sends there, as for any message.
    expect((await api(`/${secret.id}/messages`, { method: "POST", as: "user:owner", json: { text: `${base}/article-secret` } })).status).toBe(409);
  });

  test("the cache: ten messages with one link fetch the page (and its image) once; a link that failed is not fetched again", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const ogBefore = hits.get("/og.png") ?? 0;
    const sent = [];
    for (let i = 0; i < 10; i++) sent.push(await post(channel.id, { text: `${i}: ${base}/shared` }));
    const previews = new Map<string, unknown>();
    while (previews.size < 10) {
      const frame = await inbox.nextOfType("message.updated", 15_000);
      if (frame.message.link_preview) previews.set(frame.message.id, frame.message.link_preview);
    }
    inbox.close();
    expect([...previews.keys()].sort()).toEqual(sent.map((m) => m.id).sort());
    expect(new Set([...previews.values()].map((p: any) => p.image_url)).size).toBe(1);
    expect(hits.get("/shared")).toBe(1);
    expect((hits.get("/og.png") ?? 0) - ogBefore).toBe(1);

    const first = await post(channel.id, { text: `${base}/missing-page` });
    await jobDone(first.id);
    const again = await post(channel.id, { text: `${base}/missing-page` });
    await jobDone(again.id);
    expect(hits.get("/missing-page")).toBe(1);
    expect(await cached(`${base}/missing-page`)).toEqual({ preview: null, failed: true });
  });
});

describe("link preview images", () => {
  test("are stored once, whatever page or link brought them (the media repository does not grow with each fetch)", async () => {
    const channel = await createChannel(server, "user:owner");
    const sent = [];
    for (const path of ["/article-once-a", "/article-once-b", "/photo.png"]) sent.push(await post(channel.id, { text: `${base}${path}` }));
    for (const m of sent) await jobDone(m.id);
    for (const m of sent) expect((await row(m.id)).link_preview).not.toBeNull();
    const media = await server.app.deps.sql`select media_id from local_matrix_media where uploader like '@url-preview:%' and data = ${Buffer.from(PNG)}`;
    expect(media.length).toBe(1);
  });
});

describe("link previews of Matrix clients' messages", () => {
  test("a message with a link from a Matrix client gets a preview too; its reply fallback is no link", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const eve = await matrixClientIn(channel.matrix_room_id);
    const eventId = await eve.send({ msgtype: "m.text", body: `> <@x:daarion.city> ${base}/article-quoted\n\nhave you read ${base}/article-element?` });
    const message = await messageOfEvent(eventId);
    expect((await previewFrame(inbox, message.id)).message).toMatchObject({ sender_id: `matrix:${eve.id}`, link_preview: { url: `${base}/article-element`, title: "Title of /article-element" } });
    inbox.close();
    expect(hits.get("/article-quoted")).toBeUndefined();
  });

  test("MSC4095: bundled previews are used as they are (no fetch), a bare matched_url is fetched, an empty list means none, and so does a file", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const eve = await matrixClientIn(channel.matrix_room_id);
    const { contentUri } = await server.app.deps.matrix.uploadMedia(eve.id, PNG, "image/png", null);
    const bundledEvent = await eve.send({
      msgtype: "m.text",
      body: `${base}/article-bundled`,
      "com.beeper.linkpreviews": [
        { matched_url: `${base}/article-bundled`, "og:title": "Bundled title", "og:description": "From the sender", "og:image": contentUri, "og:image:width": 800, "og:image:height": 400, "matrix:image:size": 33 },
      ],
    });
    const created = await inbox.nextOfType("message.created");
    expect(created.message).toMatchObject({
      matrix_event_id: bundledEvent,
      link_preview: { url: `${base}/article-bundled`, title: "Bundled title", description: "From the sender", site_name: null, image_url: contentUri, image_width: 800, image_height: 400 },
    });
    const image = await server.api(created.message.link_preview.image_download_path, { as: "user:owner" });
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(PNG);

    const bareEvent = await eve.send({ msgtype: "m.text", body: `two links ${base}/article-not-this ${base}/article-this`, "m.url_previews": [{ "matrix:matched_url": `${base}/article-this` }] });
    const bare = await messageOfEvent(bareEvent);
    expect((await previewFrame(inbox, bare.id)).message.link_preview).toMatchObject({ url: `${base}/article-this`, title: "Title of /article-this" });
    inbox.close();

    const noneEvent = await eve.send({ msgtype: "m.text", body: `${base}/article-none`, "com.beeper.linkpreviews": [] });
    const fileEvent = await eve.send({ msgtype: "m.file", body: `${base}/article-file`, url: contentUri });
    for (const eventId of [noneEvent, fileEvent]) {
      const message = await messageOfEvent(eventId);
      expect(await jobs(message.id)).toEqual([]);
      expect((await row(message.id)).link_preview).toBeNull();
    }
    expect((await row((await messageOfEvent(noneEvent)).id)).link_previews_off).toBe(true);
    for (const path of ["/article-bundled", "/article-not-this", "/article-none", "/article-file"]) expect(hits.get(path)).toBeUndefined();
  });
});

describe("edits and deletion", () => {
  test("an edit to another link drops the old preview in its frame and brings the new one; the same link keeps it; opting out in an edit drops it; deletion removes it", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const message = await post(channel.id, { text: `${base}/edit-a` });
    expect((await previewFrame(inbox, message.id)).message.link_preview.title).toBe("Title of /edit-a");

    const edit = (json: Record<string, unknown>) => api(`/${channel.id}/messages/${message.id}`, { method: "PATCH", as: "user:alice", json });
    expect((await edit({ text: `now ${base}/edit-b` })).status).toBe(200);
    const editFrame = await inbox.nextOfType("message.updated", 10_000);
    expect(editFrame.message).toMatchObject({ id: message.id, content_preview: `now ${base}/edit-b`, link_preview: null });
    expect((await log.next("messaging.message.updated", (p) => p.message_id === message.id && p.change === "edit")).link_preview).toBeNull();
    expect((await previewFrame(inbox, message.id)).message.link_preview).toMatchObject({ url: `${base}/edit-b`, title: "Title of /edit-b" });
    expect((await log.next("messaging.message.updated", (p) => p.message_id === message.id && p.change === "link_preview" && p.version === 2)).event_id).toBe(
      `message.updated:link_preview:${message.id}:v2`,
    );

    expect((await edit({ text: `still ${base}/edit-b` })).status).toBe(200);
    expect((await inbox.nextOfType("message.updated", 10_000)).message.link_preview).toMatchObject({ url: `${base}/edit-b` });
    expect(await jobs(message.id)).toEqual([]);
    expect(hits.get("/edit-b")).toBe(1);

    expect((await edit({ text: `quiet ${base}/edit-c`, link_preview: false })).status).toBe(200);
    expect((await inbox.nextOfType("message.updated", 10_000)).message.link_preview).toBeNull();
    expect(await row(message.id)).toEqual({ link_preview_url: null, link_preview: null, link_previews_off: true });
    // Previews stay off through a later edit that does not say otherwise.
    expect((await edit({ text: `still quiet ${base}/edit-d` })).status).toBe(200);
    expect(await jobs(message.id)).toEqual([]);
    expect((await edit({ text: `loud ${base}/edit-e`, link_preview: true })).status).toBe(200);
    expect((await previewFrame(inbox, message.id)).message.link_preview.url).toBe(`${base}/edit-e`);

    expect((await api(`/${channel.id}/messages/${message.id}`, { method: "DELETE", as: "user:alice" })).status).toBe(200);
    expect(await row(message.id)).toEqual({ link_preview_url: null, link_preview: null, link_previews_off: false });
    expect((await server.api(`/api/messaging/channels/${channel.id}/messages/${message.id}/link-preview/image`, { as: "user:owner" })).status).toBe(404);
    inbox.close();
    expect(hits.get("/edit-c")).toBeUndefined();
    expect(hits.get("/edit-d")).toBeUndefined();
  });

  test("a Matrix client's edit (m.replace) to another link gets a new preview; its redaction removes it", async () => {
    const channel = await createChannel(server, "user:owner");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const eve = await matrixClientIn(channel.matrix_room_id);
    const original = await eve.send({ msgtype: "m.text", body: `${base}/edit-element-a` });
    const message = await messageOfEvent(original);
    await previewFrame(inbox, message.id);
    await eve.send({
      msgtype: "m.text",
      body: `* ${base}/edit-element-b`,
      "m.new_content": { msgtype: "m.text", body: `${base}/edit-element-b` },
      "m.relates_to": { rel_type: "m.replace", event_id: original },
    });
    expect((await previewFrame(inbox, message.id)).message.link_preview.url).toBe(`${base}/edit-element-b`);
    await eve.redact(original);
    expect((await inbox.nextOfType("message.deleted", 10_000)).message_id).toBe(message.id);
    inbox.close();
    expect((await row(message.id)).link_preview).toBeNull();
  });
});

describe("without the allow-list (the SSRF guard)", () => {
  let guarded: TestServer;
  beforeAll(async () => {
    guarded = await startTestServer({ LINK_PREVIEW_TIMEOUT_MS: "1500" });
  }, 60000);
  afterAll(() => guarded?.stop(), 60000);

  test("a loopback page, by address, by name or in IPv6 form, gets no preview and is never asked", async () => {
    const channel = await createChannel(guarded, "user:owner");
    const links = [`${base}/article-guarded-ip`, `http://localhost:${pages.port}/article-guarded-name`, `http://[::ffff:127.0.0.1]:${pages.port}/article-guarded-mapped`, `http://[::1]:${pages.port}/x`, "http://0x7f.1/x"];
    for (const link of links) {
      const res = await guarded.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: link } });
      expect(res.status).toBe(201);
      const message = await res.json();
      const deadline = Date.now() + 15_000;
      while ((await guarded.app.deps.sql`select 1 from link_preview_jobs where message_id = ${message.id}`).length > 0) {
        if (Date.now() > deadline) throw new Error("job did not finish");
        await new Promise((resolve) => setImmediate(resolve));
      }
      const [r] = await guarded.app.deps.sql`select link_preview from messages where id = ${message.id}`;
      expect(r!.link_preview).toBeNull();
    }
    for (const path of ["/article-guarded-ip", "/article-guarded-name", "/article-guarded-mapped"]) expect(hits.get(path)).toBeUndefined();
  });
});

describe.skipIf(serviceMissing("NATS_URL"))("on the NATS broker", () => {
  test("messaging.message.updated with change link_preview reaches NATS once", async () => {
    const nc = await connect({ servers: natsUrl! });
    try {
      const sub = nc.subscribe("messaging.message.updated");
      const channel = await createChannel(server, "user:owner");
      const message = await post(channel.id, { text: `${base}/article-nats` });
      const timer = setTimeout(() => sub.unsubscribe(), 15000);
      let seen: any = null;
      for await (const m of sub) {
        const data = m.json<any>();
        if (data.message_id === message.id && data.change === "link_preview") {
          seen = data;
          break;
        }
      }
      clearTimeout(timer);
      expect(seen).toMatchObject({ event_id: `message.updated:link_preview:${message.id}:v1`, link_preview: { url: `${base}/article-nats`, title: "Title of /article-nats" } });
    } finally {
      await nc.close();
    }
  });
});
