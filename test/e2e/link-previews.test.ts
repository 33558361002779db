import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, nextRoomEvent, registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { PublishedLog } from "../helpers/published.ts";

/**
 * Link previews on a real Synapse (started by `bun run synapse start`, whose homeserver.yaml
 * turns URL previews on and lets 127.0.0.1 through for this page server): the service asks
 * Synapse's preview_url, never fetches itself; an Element user (matrix-js-sdk) gets previews
 * for the links they post, and their MSC4095 bundles and opt-outs are respected.
 */
setDefaultTimeout(60_000);

const PNG = new Uint8Array([
  0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 40, 0, 0, 0, 20, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde, 0, 0, 0, 0, 0x49,
  0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
]);

describe.skipIf(synapseMissing())("link previews (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;
  let pages: ReturnType<typeof Bun.serve>;
  let base = "";
  /** Who asked the page server for what: Synapse's fetcher names itself in its User-Agent. */
  const asked: Array<{ path: string; agent: string }> = [];
  const log = new PublishedLog();
  // A run of its own: Synapse caches previews by URL, so each run's links are new to it.
  const run = Date.now().toString(36);

  beforeAll(async () => {
    pages = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const { pathname } = new URL(req.url);
        asked.push({ path: pathname, agent: req.headers.get("user-agent") ?? "" });
        if (pathname.endsWith(".png")) return new Response(PNG, { headers: { "content-type": "image/png" } });
        return new Response(
          `<html><head><title>plain</title><meta property="og:title" content="Title of ${pathname}"><meta property="og:description" content="About ${pathname}"><meta property="og:site_name" content="Pages"><meta property="og:image" content="/og-${pathname.slice(1)}.png"></head><body>hi</body></html>`,
          { headers: { "content-type": "text/html; charset=utf-8" } },
        );
      },
    });
    base = `http://127.0.0.1:${pages.port}`;
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    log.record(server.app.deps.events);
    bob = await registerRealUser("bobpreview");
    client = await elementClient(bob);
  }, 120000);

  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
    pages?.stop(true);
  }, 60000);

  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
  const askedFor = (path: string) => asked.filter((a) => a.path === path);

  async function channelWithBob() {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    for (;;) {
      const frame = await inbox.nextJson(20000);
      if (frame.type === "member.joined" && frame.member.member_id === `matrix:${bob.userId}`) break;
    }
    return { channel, inbox };
  }

  async function previewFrame(inbox: WsInbox, pred: (message: any) => boolean) {
    for (;;) {
      const frame = await inbox.nextOfType("message.updated", 30000);
      if (pred(frame.message) && frame.message.link_preview) return frame;
    }
  }

  /** The index row of a Matrix event, once the sync poller brought it (checked on every message frame, or every 50 ms). */
  async function indexed(eventId: string, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [row] = await server.app.deps.sql`select id, link_preview_url, link_preview, link_previews_off from messages where matrix_event_id = ${eventId}`;
      if (row) return row as { id: string; link_preview_url: string | null; link_preview: unknown; link_previews_off: boolean };
      if (Date.now() > deadline) throw new Error(`${eventId} was not indexed within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  test("an API message with a link gets its preview through Synapse's preview_url: og data, the image as Synapse's mxc, streamed by the service", async () => {
    const { channel, inbox } = await channelWithBob();
    const path = `/api-article-${run}`;
    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.message" && String(e.getContent().body).includes(path));
    const res = await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: `read ${base}${path}` } });
    expect(res.status).toBe(201);
    const message = await res.json();
    // Bob's client gets the message as sent: no bundled previews, so Element previews it as usual.
    expect((await seen).getContent()).toEqual({ msgtype: "m.text", body: `read ${base}${path}` });

    const frame = await previewFrame(inbox, (m) => m.id === message.id);
    inbox.close();
    const preview = frame.message.link_preview;
    // Synapse's copy of the page's image, in its own media repository.
    expect(String(preview.image_url).startsWith(`mxc://${synapse!.serverName}/`)).toBe(true);
    expect(preview).toEqual({
      url: `${base}${path}`,
      title: `Title of ${path}`,
      description: `About ${path}`,
      site_name: "Pages",
      image_url: preview.image_url,
      image_width: preview.image_width,
      image_height: preview.image_height,
      image_download_path: `/api/messaging/channels/${channel.id}/messages/${message.id}/link-preview/image`,
    });
    // Synapse fetched the page and its image; the service did not.
    expect(askedFor(path).map((a) => a.agent)).toEqual([expect.stringContaining("Synapse")]);
    expect(asked.filter((a) => a.agent.includes("daarion-messaging"))).toEqual([]);

    const image = await server.api(preview.image_download_path, { as: "user:bob" });
    expect(image.status).toBe(200);
    expect(image.headers.get("content-type")).toBe("image/png");
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(PNG);
    expect((await log.next("messaging.message.updated", (p) => p.message_id === message.id && p.change === "link_preview", 20000)).link_preview.title).toBe(`Title of ${path}`);
    const [listed] = await (await api(`/${channel.id}/messages?limit=1`, { as: "user:bob" })).json();
    expect(listed.link_preview.title).toBe(`Title of ${path}`);
  });

  test("an Element user's message with a link syncs back and gets a preview too", async () => {
    const { channel, inbox } = await channelWithBob();
    const path = `/element-article-${run}`;
    const { event_id } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: `have a look: ${base}${path}` } as never);
    const frame = await previewFrame(inbox, (m) => m.matrix_event_id === event_id);
    inbox.close();
    expect(String(frame.message.link_preview.image_url)).toMatch(/^mxc:\/\//);
    expect(frame.message).toMatchObject({ sender_id: `matrix:${bob.userId}`, link_preview: { url: `${base}${path}`, title: `Title of ${path}` } });
    expect(askedFor(path)).toHaveLength(1);
  });

  test("MSC4095 from Element: bundled previews are taken as they are (nothing fetched), an empty list means no preview", async () => {
    const { channel, inbox } = await channelWithBob();
    const { content_uri } = await client.uploadContent(new Blob([PNG], { type: "image/png" }), { name: "thumb.png", type: "image/png" });
    const bundledPath = `/bundled-${run}`;
    const { event_id: bundled } = await client.sendMessage(channel.matrix_room_id, {
      msgtype: "m.text",
      body: `${base}${bundledPath}`,
      "com.beeper.linkpreviews": [{ matched_url: `${base}${bundledPath}`, "og:title": "What Bob's client saw", "og:image": content_uri, "og:image:width": 40, "og:image:height": 20, "matrix:image:size": PNG.byteLength }],
    } as never);
    let created = await inbox.nextOfType("message.created", 20000);
    while (created.message.matrix_event_id !== bundled) created = await inbox.nextOfType("message.created", 20000);
    expect(created.message.link_preview).toEqual({
      url: `${base}${bundledPath}`,
      title: "What Bob's client saw",
      description: null,
      site_name: null,
      image_url: content_uri,
      image_width: 40,
      image_height: 20,
      image_download_path: `/api/messaging/channels/${channel.id}/messages/${created.message.id}/link-preview/image`,
    });
    const image = await server.api(created.message.link_preview.image_download_path, { as: "user:admin" });
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(PNG);

    const quietPath = `/quiet-${run}`;
    const { event_id: quiet } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: `${base}${quietPath}`, "m.url_previews": [] } as never);
    expect(await indexed(quiet)).toMatchObject({ link_preview_url: null, link_preview: null, link_previews_off: true });
    const [jobs] = await server.app.deps.sql<{ n: number }[]>`select count(*)::int as n from link_preview_jobs where message_id in (select id from messages where matrix_event_id in ${server.app.deps.sql([bundled, quiet])})`;
    expect(jobs!.n).toBe(0);
    inbox.close();
    expect(askedFor(bundledPath)).toEqual([]);
    expect(askedFor(quietPath)).toEqual([]);
  });

  test("an API message that opts out carries com.beeper.linkpreviews: [] to Element and gets no preview", async () => {
    const { channel, inbox } = await channelWithBob();
    inbox.close();
    const path = `/opted-out-${run}`;
    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.message" && String(e.getContent().body).includes(path));
    const res = await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: `${base}${path}`, link_preview: false } });
    expect(res.status).toBe(201);
    expect((await seen).getContent()).toEqual({ msgtype: "m.text", body: `${base}${path}`, "com.beeper.linkpreviews": [] });
    expect(await indexed((await res.json()).matrix_event_id)).toMatchObject({ link_preview_url: null, link_previews_off: true });
    expect(askedFor(path)).toEqual([]);
  });
});
