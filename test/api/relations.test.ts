import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { PublishedLog } from "../helpers/published.ts";
import { connect } from "nats";
import { natsUrl, serviceMissing } from "../helpers/services.ts";

/**
 * Reactions, edits and deletion against the local Matrix backend: REST in, Matrix events out,
 * and Matrix events (written by a "Matrix client" straight into the homeserver) back in.
 */
setDefaultTimeout(30_000);

let server: TestServer;
const log = new PublishedLog();

beforeAll(async () => {
  server = await startTestServer();
  log.record(server.app.deps.events);
}, 60000);
afterAll(() => server?.stop(), 60000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
const post = async (channelId: string, as: string, json: Record<string, unknown>) => {
  const res = await api(`/${channelId}/messages`, { method: "POST", as, json });
  expect(res.status).toBe(201);
  return res.json();
};
const react = (channelId: string, messageId: string, as: string, emoji: string) =>
  api(`/${channelId}/messages/${messageId}/reactions`, { method: "POST", as, json: { emoji } });
const unreact = (channelId: string, messageId: string, as: string, emoji: string) =>
  api(`/${channelId}/messages/${messageId}/reactions?emoji=${encodeURIComponent(emoji)}`, { method: "DELETE", as });
const listing = async (channelId: string, as: string) => (await api(`/${channelId}/messages`, { as })).json();
const watch = (channelId: string) => WsInbox.open(`${server.wsUrl}/ws/messaging/${channelId}?user_id=user:watcher`);

const nextPublished = (subject: string, pred: (payload: any) => boolean, timeoutMs = 5000) => log.next(subject, pred, timeoutMs);

const matrixEvent = async (eventId: string) => {
  const [row] = await server.app.deps.sql`select sender, type, content from local_matrix_events where event_id = ${eventId}`;
  return row as { sender: string; type: string; content: Record<string, any> };
};
const reactionEvents = async (roomId: string) =>
  server.app.deps.sql`select event_id, sender, content from local_matrix_events where room_id = ${roomId} and type = 'm.reaction' order by stream_ordering`;

/** A Matrix user outside DAARION, writing straight into the (local) homeserver as a client would. */
async function matrixClientIn(roomId: string) {
  const bob = `@bob${Date.now().toString(36)}:daarion.city`;
  const { matrix } = server.app.deps;
  await matrix.ensureUser(bob);
  await matrix.join(roomId, bob);
  return {
    id: bob,
    send: (type: string, content: Record<string, unknown>) => matrix.sendEvent(roomId, bob, type, content, crypto.randomUUID()).then((r) => r.eventId),
    redact: (eventId: string) => matrix.redact(roomId, bob, eventId, crypto.randomUUID()).then((r) => r.eventId),
  };
}

describe("reactions", () => {
  test("a reaction is an m.reaction annotation in Matrix, on the WebSocket and NATS, and in every listing", async () => {
    const channel = await createChannel(server, "user:admin");
    const root = await post(channel.id, "user:alice", { text: "react to me" });
    const reply = await post(channel.id, "user:alice", { text: "in the thread", thread_id: root.id });
    const inbox = await watch(channel.id);

    const res = await react(channel.id, root.id, "user:alice", "👍");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message_id: root.id, emoji: "👍", count: 1, me: true });
    const [event] = await reactionEvents(channel.matrix_room_id);
    expect(event).toMatchObject({
      sender: "@user-alice:daarion.city",
      content: { "m.relates_to": { rel_type: "m.annotation", event_id: root.matrix_event_id, key: "👍" } },
    });
    expect(await inbox.nextJson()).toEqual({ seq: 2, type: "reaction.added", message_id: root.id, emoji: "👍", reactor_id: "user:alice", count: 1 });
    expect(await nextPublished("messaging.reaction.added", (p) => p.message_id === root.id)).toMatchObject({
      channel_id: channel.id,
      matrix_event_id: event!.event_id,
      reactor_id: "user:alice",
      reactor_type: "human",
      emoji: "👍",
    });

    // Bob's first write in the public channel joins him.
    expect((await react(channel.id, root.id, "user:bob", "👍")).status).toBe(200);
    expect(await inbox.nextJson()).toMatchObject({ type: "member.joined", member: { member_id: "user:bob" } });
    expect(await inbox.nextJson()).toMatchObject({ type: "reaction.added", reactor_id: "user:bob", count: 2 });
    expect((await react(channel.id, root.id, "user:bob", "🎉")).status).toBe(200);
    expect(await inbox.nextJson()).toMatchObject({ type: "reaction.added", emoji: "🎉", count: 1 });
    expect((await react(channel.id, reply.id, "user:bob", "👀")).status).toBe(200);
    expect(await inbox.nextJson()).toMatchObject({ type: "reaction.added", message_id: reply.id });

    const asAlice = await listing(channel.id, "user:alice");
    expect(asAlice.find((m: any) => m.id === root.id).reactions).toEqual([
      { emoji: "👍", count: 2, me: true },
      { emoji: "🎉", count: 1, me: false },
    ]);
    const asCarol = await listing(channel.id, "user:carol");
    expect(asCarol.find((m: any) => m.id === root.id).reactions).toEqual([
      { emoji: "👍", count: 2, me: false },
      { emoji: "🎉", count: 1, me: false },
    ]);
    const thread = await (await api(`/${channel.id}/messages/${root.id}/thread`, { as: "user:bob" })).json();
    expect(thread[0].reactions).toEqual([{ emoji: "👀", count: 1, me: true }]);
    const one = await (await api(`/${channel.id}/messages/${root.id}`, { as: "user:bob" })).json();
    expect(one.reactions).toEqual([
      { emoji: "👍", count: 2, me: true },
      { emoji: "🎉", count: 1, me: true },
    ]);
    inbox.close();
  });

  test("one reaction per member per emoji; removing redacts it; adding again after removal works", async () => {
    const channel = await createChannel(server, "user:admin");
    const msg = await post(channel.id, "user:alice", { text: "once only" });
    const inbox = await watch(channel.id);
    expect((await react(channel.id, msg.id, "user:alice", "❤️")).status).toBe(200);
    const again = await react(channel.id, msg.id, "user:alice", "❤️");
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ message_id: msg.id, emoji: "❤️", count: 1, me: true });
    const sent = await reactionEvents(channel.matrix_room_id);
    expect(sent).toHaveLength(1);
    expect(await inbox.nextJson()).toMatchObject({ type: "reaction.added", count: 1 });

    const removed = await unreact(channel.id, msg.id, "user:alice", "❤️");
    expect(removed.status).toBe(200);
    expect(await removed.json()).toEqual({ message_id: msg.id, emoji: "❤️", count: 0, me: false });
    expect((await matrixEvent(sent[0]!.event_id)).content).toEqual({});
    const [redaction] = await server.app.deps.sql`
      select sender from local_matrix_events where type = 'm.room.redaction' and content->>'redacts' = ${sent[0]!.event_id}`;
    expect(redaction).toEqual({ sender: "@user-alice:daarion.city" });
    expect(await inbox.nextJson()).toEqual({ seq: 1, type: "reaction.removed", message_id: msg.id, emoji: "❤️", reactor_id: "user:alice", count: 0 });
    expect(await nextPublished("messaging.reaction.removed", (p) => p.matrix_event_id === sent[0]!.event_id)).toMatchObject({
      message_id: msg.id,
      reactor_id: "user:alice",
      emoji: "❤️",
    });
    expect((await listing(channel.id, "user:alice"))[0].reactions).toEqual([]);
    // Removing what is not there answers the same, and sends nothing to Matrix.
    expect((await unreact(channel.id, msg.id, "user:alice", "❤️")).status).toBe(200);

    expect((await react(channel.id, msg.id, "user:alice", "❤️")).status).toBe(200);
    const readded = await reactionEvents(channel.matrix_room_id);
    expect(readded).toHaveLength(2);
    expect(await inbox.nextJson()).toMatchObject({ type: "reaction.added", count: 1 });
    const rows = await server.app.deps.sql`select matrix_event_id, removed_at from message_reactions where message_id = ${msg.id}`;
    expect([...rows]).toEqual([{ matrix_event_id: readded[1]!.event_id, removed_at: null }]);
    // No stray frames from the echoes of our own events: the next frame is a new message's.
    await post(channel.id, "user:alice", { text: "after" });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.created", message: { content_preview: "after" } });
    inbox.close();
  });

  test("a reaction Matrix already has (M_DUPLICATE_ANNOTATION) counts as done", async () => {
    const channel = await createChannel(server, "user:admin");
    const msg = await post(channel.id, "user:alice", { text: "dup" });
    expect((await react(channel.id, msg.id, "user:alice", "🔥")).status).toBe(200);
    // As after a crash between Matrix and the index: Matrix has the reaction, the index does not.
    await server.app.deps.sql`delete from message_reactions where message_id = ${msg.id}`;
    const res = await react(channel.id, msg.id, "user:alice", "🔥");
    expect(res.status).toBe(200);
    expect((await res.json()).me).toBe(true);
    expect(await reactionEvents(channel.matrix_room_id)).toHaveLength(1);
  });

  test("refusals: bad body 400, unknown message 404, hidden channel 404, non-member agent 403; nothing written", async () => {
    const channel = await createChannel(server, "user:admin");
    const msg = await post(channel.id, "user:alice", { text: "x" });
    const bad = await api(`/${channel.id}/messages/${msg.id}/reactions`, { method: "POST", as: "user:alice", json: { emoji: "" } });
    expect(bad.status).toBe(400);
    const extra = await api(`/${channel.id}/messages/${msg.id}/reactions`, { method: "POST", as: "user:alice", json: { emoji: "x", more: 1 } });
    expect(extra.status).toBe(400);
    expect((await api(`/${channel.id}/messages/${msg.id}/reactions`, { method: "DELETE", as: "user:alice" })).status).toBe(400);
    const unknown = await react(channel.id, crypto.randomUUID(), "user:alice", "👍");
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: "NOT_FOUND", message: "message not found", request_id: expect.any(String) });
    expect((await react(channel.id, msg.id, "agent:stranger", "👍")).status).toBe(403);
    const priv = await createChannel(server, "user:admin", { visibility: "private" });
    const hidden = await post(priv.id, "user:admin", { text: "secret" });
    expect((await react(priv.id, hidden.id, "user:alice", "👍")).status).toBe(404);
    expect((await react(channel.id, msg.id, "", "👍")).status).toBe(401);
    expect(await reactionEvents(channel.matrix_room_id)).toHaveLength(0);
    const [n] = await server.app.deps.sql`select count(*)::int as n from message_reactions where message_id = any(${[msg.id, hidden.id]}::uuid[])`;
    expect(n!.n).toBe(0);
  });
});

describe("edits", () => {
  test("the sender edits: m.replace with m.new_content and the * fallback; preview, edited_at and history follow", async () => {
    const channel = await createChannel(server, "user:admin");
    const msg = await post(channel.id, "user:alice", { text: "helo" });
    expect((await react(channel.id, msg.id, "user:bob", "👍")).status).toBe(200);
    const inbox = await watch(channel.id);
    const res = await api(`/${channel.id}/messages/${msg.id}`, {
      method: "PATCH",
      as: "user:alice",
      json: { text: "hello", formatted_body: "<b>hello</b>" },
    });
    expect(res.status).toBe(200);
    const view = await res.json();
    expect(view).toMatchObject({ id: msg.id, seq: msg.seq, content_preview: "hello", reactions: [{ emoji: "👍", count: 1, me: false }] });
    expect(view.edited_at).not.toBeNull();
    const [edit] = await server.app.deps.sql`
      select event_id, sender, content from local_matrix_events
      where room_id = ${channel.matrix_room_id} and content->'m.relates_to'->>'rel_type' = 'm.replace'`;
    expect(edit).toMatchObject({ sender: "@user-alice:daarion.city" });
    expect(edit!.content).toEqual({
      msgtype: "m.text",
      body: "* hello",
      format: "org.matrix.custom.html",
      formatted_body: "* <b>hello</b>",
      "m.new_content": { msgtype: "m.text", body: "hello", format: "org.matrix.custom.html", formatted_body: "<b>hello</b>" },
      "m.relates_to": { rel_type: "m.replace", event_id: msg.matrix_event_id },
    });
    const frame = await inbox.nextJson();
    expect(frame).toMatchObject({ type: "message.updated", seq: msg.seq, message: { id: msg.id, content_preview: "hello", edited_at: view.edited_at } });
    expect(await nextPublished("messaging.message.updated", (p) => p.message_id === msg.id)).toMatchObject({
      matrix_event_id: edit!.event_id,
      editor_id: "user:alice",
      version: 2,
      preview: "hello",
    });

    expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:alice", json: { text: "hello!" } })).status).toBe(200);
    expect(await inbox.nextJson()).toMatchObject({ type: "message.updated", message: { content_preview: "hello!" } });
    const history = await (await api(`/${channel.id}/messages/${msg.id}/edits`, { as: "user:carol" })).json();
    expect(history.map((v: any) => [v.version, v.content_preview, v.editor_id])).toEqual([
      [1, "helo", "user:alice"],
      [2, "hello", "user:alice"],
      [3, "hello!", "user:alice"],
    ]);
    expect(history[0].matrix_event_id).toBe(msg.matrix_event_id);
    expect(history[1]).toMatchObject({ matrix_event_id: edit!.event_id, formatted_body: "<b>hello</b>" });
    const listed = (await listing(channel.id, "user:alice")).find((m: any) => m.id === msg.id);
    expect(listed).toMatchObject({ content_preview: "hello!", seq: msg.seq });
    expect((await listing(channel.id, "user:alice")).filter((m: any) => m.content_preview.startsWith("* "))).toEqual([]);
    // The edits' echoes from Matrix are neither new messages nor new versions.
    await post(channel.id, "user:alice", { text: "next" });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.created", message: { content_preview: "next", seq: msg.seq + 1 } });
    inbox.close();
  });

  test("an unedited message's history is its original; others may not edit (403); bad bodies are 400", async () => {
    const channel = await createChannel(server, "user:admin");
    const msg = await post(channel.id, "user:alice", { text: "mine" });
    const history = await (await api(`/${channel.id}/messages/${msg.id}/edits`, { as: "user:bob" })).json();
    expect(history).toEqual([
      { version: 1, editor_id: "user:alice", content_preview: "mine", formatted_body: null, matrix_event_id: msg.matrix_event_id, created_at: msg.created_at },
    ]);
    const other = await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:admin", json: { text: "theirs" } });
    expect(other.status).toBe(403);
    expect((await other.json()).error).toBe("FORBIDDEN");
    expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:alice", json: { text: "" } })).status).toBe(400);
    expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:alice", json: { text: "x", msgtype: "m.notice" } })).status).toBe(400);
    expect((await api(`/${channel.id}/messages/${crypto.randomUUID()}`, { method: "PATCH", as: "user:alice", json: { text: "x" } })).status).toBe(404);
    expect((await api(`/${channel.id}/messages/${crypto.randomUUID()}/edits`, { as: "user:alice" })).status).toBe(404);
    const [row] = await server.app.deps.sql`select content_preview, edited_at from messages where id = ${msg.id}`;
    expect(row).toEqual({ content_preview: "mine", edited_at: null });
  });
});

describe("deletion", () => {
  test("the sender deletes: redaction in Matrix, deleted_at and no preview in the index, left out of listings", async () => {
    const channel = await createChannel(server, "user:admin");
    const keep = await post(channel.id, "user:alice", { text: "keep" });
    const msg = await post(channel.id, "user:alice", { text: "regret" });
    await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:alice", json: { text: "regret more" } });
    const inbox = await watch(channel.id);
    const res = await api(`/${channel.id}/messages/${msg.id}`, { method: "DELETE", as: "user:alice" });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.message_id).toBe(msg.id);
    expect((await matrixEvent(msg.matrix_event_id)).content).toEqual({});
    const [redaction] = await server.app.deps.sql`
      select event_id, sender from local_matrix_events where type = 'm.room.redaction' and content->>'redacts' = ${msg.matrix_event_id}`;
    expect(redaction!.sender).toBe("@user-alice:daarion.city");
    expect(await inbox.nextJson()).toEqual({ type: "message.deleted", seq: msg.seq, message_id: msg.id, deleted_by: "user:alice", deleted_at: body.deleted_at });
    expect(await nextPublished("messaging.message.deleted", (p) => p.message_id === msg.id)).toMatchObject({
      seq: msg.seq,
      matrix_event_id: redaction!.event_id,
      deleted_by: "user:alice",
    });
    const [row] = await server.app.deps.sql`select content_preview, deleted_at from messages where id = ${msg.id}`;
    expect(row!.content_preview).toBe("");
    expect(row!.deleted_at).not.toBeNull();
    const [edits] = await server.app.deps.sql`select count(*)::int as n from message_edits where message_id = ${msg.id}`;
    expect(edits!.n).toBe(0);
    expect((await listing(channel.id, "user:alice")).map((m: any) => m.id)).toEqual([keep.id]);
    expect((await api(`/${channel.id}/messages/${msg.id}`, { as: "user:alice" })).status).toBe(404);
    expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "DELETE", as: "user:alice" })).status).toBe(404);
    expect((await react(channel.id, msg.id, "user:alice", "👍")).status).toBe(404);
    // Our own redaction's echo changes nothing: the next frame is a new message's.
    await post(channel.id, "user:alice", { text: "after" });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.created", message: { content_preview: "after" } });
    inbox.close();
  });

  test("moderators (can_kick, admin, owner) may delete others' messages, as the room creator in Matrix; others get 403", async () => {
    const channel = await createChannel(server, "user:admin");
    await api(`/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "user:kicker", role: "member", can_kick: true } });
    await api(`/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "user:mod", role: "admin" } });
    const a = await post(channel.id, "user:alice", { text: "a" });
    const b = await post(channel.id, "user:alice", { text: "b" });
    const c = await post(channel.id, "user:alice", { text: "c" });
    const refused = await api(`/${channel.id}/messages/${a.id}`, { method: "DELETE", as: "user:bob" });
    expect(refused.status).toBe(403);
    expect((await refused.json()).error).toBe("FORBIDDEN");
    expect((await matrixEvent(a.matrix_event_id)).content).toEqual({ msgtype: "m.text", body: "a" });
    for (const [msg, who] of [[a, "user:kicker"], [b, "user:mod"], [c, "user:admin"]] as const) {
      expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "DELETE", as: who })).status).toBe(200);
      const [redaction] = await server.app.deps.sql`
        select sender from local_matrix_events where type = 'm.room.redaction' and content->>'redacts' = ${msg.matrix_event_id}`;
      expect(redaction!.sender).toBe("@user-admin:daarion.city");
    }
    expect(await listing(channel.id, "user:admin")).toEqual([]);
  });
});

describe("from a Matrix client", () => {
  test("reactions and their redactions sync back to the index, the WebSocket and NATS", async () => {
    const channel = await createChannel(server, "user:admin");
    const msg = await post(channel.id, "user:alice", { text: "react in Element" });
    const inbox = await watch(channel.id);
    const bob = await matrixClientIn(channel.matrix_room_id);
    expect(await inbox.nextJson()).toMatchObject({ type: "member.joined", member: { member_id: `matrix:${bob.id}` } });
    const reactionId = await bob.send("m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: msg.matrix_event_id, key: "🚀" } });
    expect(await inbox.nextJson()).toEqual({ seq: 1, type: "reaction.added", message_id: msg.id, emoji: "🚀", reactor_id: `matrix:${bob.id}`, count: 1 });
    expect(await nextPublished("messaging.reaction.added", (p) => p.matrix_event_id === reactionId)).toMatchObject({ reactor_id: `matrix:${bob.id}` });
    expect((await listing(channel.id, "user:alice"))[0].reactions).toEqual([{ emoji: "🚀", count: 1, me: false }]);
    // A DAARION user adds the same emoji: both count.
    expect((await react(channel.id, msg.id, "user:alice", "🚀")).status).toBe(200);
    expect(await inbox.nextJson()).toMatchObject({ type: "reaction.added", reactor_id: "user:alice", count: 2 });

    await bob.redact(reactionId);
    expect(await inbox.nextJson()).toEqual({ seq: 1, type: "reaction.removed", message_id: msg.id, emoji: "🚀", reactor_id: `matrix:${bob.id}`, count: 1 });
    expect(await nextPublished("messaging.reaction.removed", (p) => p.matrix_event_id === reactionId)).toMatchObject({ emoji: "🚀" });
    expect((await listing(channel.id, "user:alice"))[0].reactions).toEqual([{ emoji: "🚀", count: 1, me: true }]);

    // Bob reacts again after removing: a new event, the same row, active again.
    const again = await bob.send("m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: msg.matrix_event_id, key: "🚀" } });
    expect(await inbox.nextJson()).toMatchObject({ type: "reaction.added", reactor_id: `matrix:${bob.id}`, count: 2 });
    const rows = await server.app.deps.sql`select matrix_event_id from message_reactions where reactor_id = ${`matrix:${bob.id}`}`;
    expect([...rows]).toEqual([{ matrix_event_id: again }]);
    inbox.close();
  });

  test("edits sync back as new versions, not new messages; edits by anyone but the sender are ignored", async () => {
    const channel = await createChannel(server, "user:admin");
    const inbox = await watch(channel.id);
    const bob = await matrixClientIn(channel.matrix_room_id);
    expect(await inbox.nextJson()).toMatchObject({ type: "member.joined" });
    const original = await bob.send("m.room.message", { msgtype: "m.text", body: "teh typo" });
    const created = await inbox.nextJson();
    expect(created).toMatchObject({ type: "message.created", message: { content_preview: "teh typo" } });
    const id = created.message.id;
    const editId = await bob.send("m.room.message", {
      msgtype: "m.text",
      body: "* the typo",
      "m.new_content": { msgtype: "m.text", body: "the typo" },
      "m.relates_to": { rel_type: "m.replace", event_id: original },
    });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.updated", seq: created.seq, message: { id, content_preview: "the typo" } });
    expect(await nextPublished("messaging.message.updated", (p) => p.matrix_event_id === editId)).toMatchObject({
      message_id: id,
      editor_id: `matrix:${bob.id}`,
      version: 2,
    });
    const history = await (await api(`/${channel.id}/messages/${id}/edits`, { as: "user:alice" })).json();
    expect(history.map((v: any) => v.content_preview)).toEqual(["teh typo", "the typo"]);

    // Someone else's "edit" of Bob's message changes nothing: the next frame is the next message.
    const mallory = await matrixClientIn(channel.matrix_room_id);
    expect(await inbox.nextJson()).toMatchObject({ type: "member.joined" });
    await mallory.send("m.room.message", {
      msgtype: "m.text",
      body: "* hijacked",
      "m.new_content": { msgtype: "m.text", body: "hijacked" },
      "m.relates_to": { rel_type: "m.replace", event_id: original },
    });
    await bob.send("m.room.message", { msgtype: "m.text", body: "still me" });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.created", seq: created.seq + 1, message: { content_preview: "still me" } });
    const list = await listing(channel.id, "user:alice");
    expect(list.map((m: any) => m.content_preview)).toEqual(["still me", "the typo"]);
    inbox.close();
  });

  test("a redaction of a message syncs back as a deletion", async () => {
    const channel = await createChannel(server, "user:admin");
    const msg = await post(channel.id, "user:alice", { text: "moderate me" });
    const inbox = await watch(channel.id);
    const bob = await matrixClientIn(channel.matrix_room_id);
    expect(await inbox.nextJson()).toMatchObject({ type: "member.joined" });
    const own = await bob.send("m.room.message", { msgtype: "m.text", body: "bob's own" });
    const created = await inbox.nextJson();
    const redactionId = await bob.redact(own);
    expect(await inbox.nextJson()).toMatchObject({ type: "message.deleted", seq: created.seq, message_id: created.message.id, deleted_by: `matrix:${bob.id}` });
    expect(await nextPublished("messaging.message.deleted", (p) => p.matrix_event_id === redactionId)).toMatchObject({ message_id: created.message.id });
    // The room's creator (an owner in DAARION) redacts Alice's message from a Matrix client.
    await server.app.deps.matrix.redact(channel.matrix_room_id, "@user-admin:daarion.city", msg.matrix_event_id, crypto.randomUUID());
    expect(await inbox.nextJson()).toMatchObject({ type: "message.deleted", message_id: msg.id, deleted_by: "user:admin" });
    expect(await listing(channel.id, "user:alice")).toEqual([]);
    inbox.close();
  });
});

describe.skipIf(serviceMissing("NATS_URL"))("on the NATS broker", () => {
  test("reaction, edit and deletion events arrive on their subjects", async () => {
    const nc = await connect({ servers: natsUrl! });
    try {
      const sub = nc.subscribe("messaging.>");
      const seen: Array<{ subject: string; data: any }> = [];
      const wanted = ["messaging.reaction.added", "messaging.reaction.removed", "messaging.message.updated", "messaging.message.deleted"];
      // Other suites may publish on the same broker: only this message's events count.
      let messageId = "";
      const done = (async () => {
        for await (const m of sub) {
          seen.push({ subject: m.subject, data: m.json() });
          if (wanted.every((w) => seen.some((e) => e.subject === w && e.data.message_id === messageId))) return;
        }
      })();
      await nc.flush();
      await (server.app.deps.events as unknown as { ready?(): Promise<void> }).ready?.();
      const channel = await createChannel(server, "user:admin");
      const msg = await post(channel.id, "user:alice", { text: "over the wire" });
      messageId = msg.id;
      expect((await react(channel.id, msg.id, "user:alice", "✅")).status).toBe(200);
      expect((await unreact(channel.id, msg.id, "user:alice", "✅")).status).toBe(200);
      expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:alice", json: { text: "edited" } })).status).toBe(200);
      expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "DELETE", as: "user:alice" })).status).toBe(200);
      await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`got ${seen.map((e) => e.subject)}`)), 10000))]);
      const mine = seen.filter((e) => e.data.message_id === msg.id).map((e) => e.subject);
      expect(mine).toEqual(["messaging.message.created", ...wanted]);
    } finally {
      await nc.drain();
    }
  });
});
