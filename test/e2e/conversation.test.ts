import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect, type NatsConnection } from "nats";
import { RoomEvent, type MatrixClient, type MatrixEvent as SdkEvent } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { natsUrl, serviceMissing } from "../helpers/services.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv, nextRoomEvent } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(120_000);

/**
 * The whole conversation, once, against Synapse: half driven over REST (as user:alice), half
 * from a Matrix client (Bob, matrix-js-sdk). Every step is checked where users see it: the
 * Matrix client's timeline, the REST API, the channel's WebSocket and the NATS subjects.
 */
describe.skipIf(synapseMissing() || serviceMissing("NATS_URL"))("the whole conversation (Synapse, NATS)", () => {
  let server: TestServer;
  let client: MatrixClient;
  let bob: { userId: string; accessToken: string };
  let nc: NatsConnection;
  const nats: Array<{ subject: string; data: any }> = [];
  let natsWake: (() => void) | null = null;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000", NATS_URL: natsUrl! }));
    nc = await connect({ servers: natsUrl! });
    const sub = nc.subscribe("messaging.>");
    void (async () => {
      for await (const m of sub) {
        nats.push({ subject: m.subject, data: m.json() });
        natsWake?.();
      }
    })();
    await nc.flush();
    bob = await registerRealUser("convo");
    client = await elementClient(bob);
    await client.setDisplayName("Bob");
  }, 120000);

  afterAll(async () => {
    client?.stopClient();
    await nc?.drain();
    await server?.stop();
  }, 60000);

  async function natsEvent(subject: string, pred: (d: any) => boolean, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = nats.find((e) => e.subject === subject && pred(e.data));
      if (hit) return hit.data;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${subject} on NATS`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        natsWake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** The next frame of `type` on the socket; frames of other types in between are skipped. */
  async function frame(inbox: WsInbox, type: string, pred: (f: any) => boolean = () => true, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = await inbox.nextJson(Math.max(1, deadline - Date.now()));
      if (f.type === type && pred(f)) return f;
    }
  }


  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(path, { as: "user:alice", ...init });

  test("thread, react, un-react, edit, delete, type, read, search, upload, pin, kick", async () => {
    const channel = await createChannel(server, "user:alice", { name: "Launch", visibility: "public" });
    const base = `/api/messaging/channels/${channel.id}`;
    const room = channel.matrix_room_id;
    const ws = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:alice`);
    await client.joinRoom(channel.matrix_alias);
    expect((await frame(ws, "member.joined")).member.member_id).toBe(`matrix:${bob.userId}`);

    // 1. REST: Alice writes the thread's root.
    const rootSeen = nextRoomEvent(client, room, (e) => e.getContent().body === "Plan for the launch");
    const root = await (await api(`${base}/messages`, { method: "POST", json: { text: "Plan for the launch" } })).json();
    expect((await rootSeen).getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    expect((await frame(ws, "message.created")).message.id).toBe(root.id);
    await natsEvent("messaging.message.created", (d) => d.message_id === root.id);

    // 2. Matrix: Bob answers in the thread.
    const { event_id: bobReplyEvent } = await client.sendMessage(room, {
      msgtype: "m.text",
      body: "Rockets are ready",
      "m.relates_to": { rel_type: "m.thread", event_id: root.matrix_event_id, is_falling_back: true, "m.in_reply_to": { event_id: root.matrix_event_id } },
    } as never);
    const replyFrame = await frame(ws, "message.created", (f) => f.message.matrix_event_id === bobReplyEvent);
    expect(replyFrame.message).toMatchObject({ thread_id: root.id, sender_id: `matrix:${bob.userId}`, sender_display_name: "Bob" });
    await natsEvent("messaging.message.created", (d) => d.matrix_event_id === bobReplyEvent && d.thread_id === root.id);
    const thread = await (await api(`${base}/messages/${root.id}/thread`)).json();
    expect(thread.map((m: { matrix_event_id: string }) => m.matrix_event_id)).toEqual([bobReplyEvent]);

    // 3. Matrix: Bob reacts to the root.
    await client.sendEvent(room, "m.reaction" as never, { "m.relates_to": { rel_type: "m.annotation", event_id: root.matrix_event_id, key: "👍" } } as never);
    expect(await frame(ws, "reaction.added")).toMatchObject({ message_id: root.id, emoji: "👍", reactor_id: `matrix:${bob.userId}`, count: 1 });
    await natsEvent("messaging.reaction.added", (d) => d.message_id === root.id && d.emoji === "👍");

    // 4. REST: Alice reacts, then takes it back: a reaction, then its redaction, in Matrix.
    const reactionSeen = nextRoomEvent(client, room, (e) => e.getType() === "m.reaction" && e.getContent()["m.relates_to"]?.key === "🎉");
    expect((await api(`${base}/messages/${root.id}/reactions`, { method: "POST", json: { emoji: "🎉" } })).status).toBeLessThan(300);
    const reaction = await reactionSeen;
    expect(reaction.getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    await frame(ws, "reaction.added", (f) => f.emoji === "🎉");
    const listed = await (await api(`${base}/messages`)).json();
    expect(listed.find((m: { id: string }) => m.id === root.id).reactions).toEqual(
      expect.arrayContaining([
        { emoji: "👍", count: 1, me: false },
        { emoji: "🎉", count: 1, me: true },
      ]),
    );
    const redactionSeen = nextRoomEvent(client, room, (e) => e.getType() === "m.room.redaction" && e.event.redacts === reaction.getId());
    expect((await api(`${base}/messages/${root.id}/reactions?emoji=${encodeURIComponent("🎉")}`, { method: "DELETE" })).status).toBe(200);
    await redactionSeen;
    expect(await frame(ws, "reaction.removed")).toMatchObject({ message_id: root.id, emoji: "🎉", count: 0 });
    await natsEvent("messaging.reaction.removed", (d) => d.message_id === root.id && d.emoji === "🎉");

    // 5. REST: Alice edits the root: m.replace in Matrix, a new version in the history.
    const editSeen = nextRoomEvent(client, room, (e) => e.getContent()["m.relates_to"]?.rel_type === "m.replace");
    expect((await api(`${base}/messages/${root.id}`, { method: "PATCH", json: { text: "Plan for the launch on Friday" } })).status).toBe(200);
    const edit = await editSeen;
    expect(edit.getContent()).toMatchObject({ body: "* Plan for the launch on Friday", "m.new_content": { body: "Plan for the launch on Friday" } });
    expect((await frame(ws, "message.updated")).message).toMatchObject({ id: root.id, content_preview: "Plan for the launch on Friday" });
    await natsEvent("messaging.message.updated", (d) => d.message_id === root.id);
    expect(await (await api(`${base}/messages/${root.id}/edits`)).json()).toHaveLength(2);

    // 6. Matrix: Bob writes something and deletes it (a redaction).
    const { event_id: oops } = await client.sendMessage(room, { msgtype: "m.text", body: "wrong room, sorry" } as never);
    const oopsFrame = await frame(ws, "message.created", (f) => f.message.matrix_event_id === oops);
    await client.redactEvent(room, oops);
    expect(await frame(ws, "message.deleted")).toMatchObject({ message_id: oopsFrame.message.id });
    await natsEvent("messaging.message.deleted", (d) => d.message_id === oopsFrame.message.id);
    const afterDelete = await (await api(`${base}/messages`)).json();
    expect(afterDelete.map((m: { id: string }) => m.id)).not.toContain(oopsFrame.message.id);

    // 7. Matrix: Bob types; the WebSocket shows it.
    await client.sendTyping(room, true, 10000);
    expect(await frame(ws, "typing", (f) => f.user_ids.includes(`matrix:${bob.userId}`))).toBeTruthy();
    await natsEvent("messaging.typing", (d) => d.channel_id === channel.id && d.user_ids.includes(`matrix:${bob.userId}`));
    await client.sendTyping(room, false, 0);

    // 8. REST: Alice reads up to Bob's reply: Bob's client sees her receipt; NATS and WS too.
    const alice = `@user-alice:${synapse!.serverName}`;
    const receiptSeen = new Promise<void>((resolve) => {
      const onReceipt = (event: SdkEvent) => {
        const content = event.getContent() as Record<string, Record<string, Record<string, unknown>>>;
        if (content[root.matrix_event_id]?.["m.read"]?.[alice]) {
          client.off(RoomEvent.Receipt, onReceipt);
          resolve();
        }
      };
      client.on(RoomEvent.Receipt, onReceipt);
    });
    expect((await api(`${base}/read`, { method: "POST", json: { message_id: root.id } })).status).toBe(200);
    await receiptSeen;
    expect(await frame(ws, "read")).toMatchObject({ member_id: "user:alice", last_read_message_id: root.id });
    await natsEvent("messaging.message.read", (d) => d.member_id === "user:alice" && d.channel_id === channel.id);

    // 9. REST: search finds the edited root and Bob's thread reply, not the deleted message.
    const found = await (await api(`/api/messaging/search?q=${encodeURIComponent("launch friday")}&channel_id=${channel.id}`)).json();
    expect(found.map((m: { id: string }) => m.id)).toEqual([root.id]);
    const rockets = await (await api(`/api/messaging/search?q=rockets&channel_id=${channel.id}`)).json();
    expect(rockets.map((m: { matrix_event_id: string }) => m.matrix_event_id)).toEqual([bobReplyEvent]);
    expect(await (await api(`/api/messaging/search?q=sorry&channel_id=${channel.id}`)).json()).toEqual([]);

    // 10. REST: Alice uploads an image: Bob's client gets an m.image with an mxc url.
    const png = Uint8Array.from(atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="), (c) => c.charCodeAt(0));
    const form = new FormData();
    form.append("file", new File([png], "dot.png", { type: "image/png" }));
    form.append("text", "the launch pad");
    const imageSeen = nextRoomEvent(client, room, (e) => e.getContent().msgtype === "m.image");
    const upload = await api(`${base}/files`, { method: "POST", body: form });
    expect(upload.status).toBe(201);
    const uploaded = await upload.json();
    const image = await imageSeen;
    expect(image.getContent()).toMatchObject({ msgtype: "m.image", body: "the launch pad", info: { mimetype: "image/png", size: png.length } });
    expect(image.getContent().url).toMatch(/^mxc:\/\//);
    expect((await frame(ws, "message.created", (f) => f.message.id === uploaded.id)).message.content_type).toBe("image");
    await natsEvent("messaging.message.created", (d) => d.message_id === uploaded.id);
    const download = await api(`${base}/messages/${uploaded.id}/file`);
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(png);

    // 11. REST: Alice pins the root: the room's m.room.pinned_events in Bob's client lists it.
    const pinSeen = nextRoomEvent(client, room, (e) => e.getType() === "m.room.pinned_events" && (e.getContent().pinned ?? []).includes(root.matrix_event_id));
    expect((await api(`${base}/pins`, { method: "POST", json: { message_id: root.id } })).status).toBe(201);
    await pinSeen;
    expect(await frame(ws, "message.pinned")).toMatchObject({ pin: { message_id: root.id, pinned_by: "user:alice" } });
    await natsEvent("messaging.message.pinned", (d) => d.message_id === root.id);
    expect((await (await api(`${base}/pins`)).json()).map((p: { message_id: string }) => p.message_id)).toEqual([root.id]);

    // 12. REST: Alice (the owner) kicks Bob: his client sees the kick; he is no longer a member.
    const kickSeen = nextRoomEvent(client, room, (e) => e.getType() === "m.room.member" && e.getStateKey() === bob.userId && e.getContent().membership === "leave");
    const kick = await api(`${base}/members/${encodeURIComponent(`matrix:${bob.userId}`)}`, { method: "DELETE" });
    expect(kick.status).toBeLessThan(300);
    const kickEvent = await kickSeen;
    expect(kickEvent.getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    expect(await frame(ws, "member.left")).toMatchObject({ member: { member_id: `matrix:${bob.userId}` } });
    await natsEvent("messaging.member.kicked", (d) => d.member_id === `matrix:${bob.userId}`);
    const members = await (await api(`${base}/members`)).json();
    expect(members.map((m: { member_id: string }) => m.member_id)).not.toContain(`matrix:${bob.userId}`);
    ws.close();
  });
});
