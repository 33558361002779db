import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";

/**
 * Typing and read state against the built-in local Matrix backend. A "Matrix client" here is
 * the backend itself, driven as @bob:daarion.city, a user outside the service's namespace.
 */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
}, 60000);
afterAll(() => server?.stop(), 60000);

const BOB = "@bob:daarion.city";
const api = (path: string, as: string, json?: unknown) =>
  server.api(`/api/messaging/channels${path}`, json === undefined ? { as } : { method: "POST", as, json });
const ws = (channelId: string, user: string) => WsInbox.open(`${server.wsUrl}/ws/messaging/${channelId}?user_id=${encodeURIComponent(user)}`);
const send = async (channelId: string, as: string, text: string) => {
  const res = await api(`/${channelId}/messages`, as, { text });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; seq: number; matrix_event_id: string };
};
/** The next frame of `type`, skipping (and returning) any other frames on the way. */
async function nextOfType(inbox: WsInbox, type: string, timeoutMs = 5000) {
  const skipped: any[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const frame = await inbox.nextJson(Math.max(1, deadline - Date.now()));
    if (frame.type === type) return { frame, skipped };
    skipped.push(frame);
  }
}
async function channelWithMembers(...members: string[]) {
  const channel = await createChannel(server, "user:alice", { visibility: "private" });
  for (const member of members) {
    const res = await api(`/${channel.id}/members`, "user:alice", { member_id: member });
    expect(res.status).toBe(201);
  }
  return channel;
}
const unreadIn = async (as: string, channelId: string) => {
  const list = (await (await api("", as)).json()) as Array<{ id: string; unread_count: number }>;
  return list.find((c) => c.id === channelId)?.unread_count;
};

describe("typing", () => {
  test("REST typing reaches every subscriber once, and stops", async () => {
    const channel = await channelWithMembers("user:carol");
    const watcher = await ws(channel.id, "user:carol");
    const started = await api(`/${channel.id}/typing`, "user:alice", { typing: true });
    expect(started.status).toBe(200);
    expect(await started.json()).toEqual({ user_ids: ["user:alice"] });
    expect(await watcher.nextJson()).toEqual({ seq: 0, type: "typing", user_ids: ["user:alice"] });

    // Renewing is not news; Matrix's echo of our own typing is not news either.
    expect((await api(`/${channel.id}/typing`, "user:alice", { typing: true })).status).toBe(200);
    const stopped = await api(`/${channel.id}/typing`, "user:alice", { typing: false });
    expect(await stopped.json()).toEqual({ user_ids: [] });
    expect(await watcher.nextJson()).toEqual({ seq: 0, type: "typing", user_ids: [] });
    const msg = await send(channel.id, "user:alice", "done typing");
    // The very next frame is the message: no stray typing frame came in between.
    expect(await watcher.nextJson()).toMatchObject({ type: "message.created", message: { id: msg.id } });
    watcher.close();
  });

  test("a typing frame on the socket is typing too, and ends by itself after its timeout", async () => {
    const channel = await channelWithMembers("user:carol");
    const typist = await ws(channel.id, "user:carol");
    const watcher = await ws(channel.id, "user:alice");
    typist.ws.send(JSON.stringify({ type: "typing", typing: true, timeout_ms: 1000 }));
    expect(await watcher.nextJson()).toEqual({ seq: 0, type: "typing", user_ids: ["user:carol"] });
    expect(await typist.nextJson()).toEqual({ seq: 0, type: "typing", user_ids: ["user:carol"] });
    expect(await watcher.nextJson(5000)).toEqual({ seq: 0, type: "typing", user_ids: [] });
    typist.close();
    watcher.close();
  });

  test("bad typing input is refused and changes nothing", async () => {
    const channel = await channelWithMembers();
    const watcher = await ws(channel.id, "user:alice");
    const bad = await api(`/${channel.id}/typing`, "user:alice", { typing: "yes" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: expect.any(String) });
    expect((await api(`/${channel.id}/typing`, "user:alice", { typing: true, timeout_ms: 10 })).status).toBe(400);
    expect((await api(`/${channel.id}/typing`, "user:alice", { typing: true, extra: 1 })).status).toBe(400);
    expect((await api(`/${crypto.randomUUID()}/typing`, "user:alice", { typing: true })).status).toBe(404);
    // A private channel does not exist for outsiders.
    expect((await api(`/${channel.id}/typing`, "user:mallory", { typing: true })).status).toBe(404);

    watcher.ws.send(JSON.stringify({ type: "typing" }));
    expect(await watcher.nextJson()).toMatchObject({ type: "error", error: "UNKNOWN_FRAME" });
    watcher.ws.send("{not json");
    expect(await watcher.nextJson()).toMatchObject({ type: "error", error: "UNKNOWN_FRAME" });
    watcher.ws.send("ping");
    // Still no typing frame: nothing was started.
    expect(await watcher.next()).toBe("pong");
    watcher.close();
  });

  test("non-members of a public channel may watch but not type", async () => {
    const channel = await createChannel(server, "user:alice", { visibility: "public" });
    const res = await api(`/${channel.id}/typing`, "user:stranger", { typing: true });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: "FORBIDDEN" });
    const stranger = await ws(channel.id, "user:stranger");
    stranger.ws.send(JSON.stringify({ type: "typing", typing: true }));
    expect(await stranger.nextJson()).toMatchObject({ type: "error", error: "FORBIDDEN" });
    stranger.close();
  });

  test("typing in a Matrix client appears on the socket with the Matrix user's member id", async () => {
    const channel = await createChannel(server, "user:alice", { visibility: "public" });
    const watcher = await ws(channel.id, "user:alice");
    const matrix = server.app.deps.matrix;
    await matrix.ensureUser(BOB);
    await matrix.join(channel.matrix_room_id, BOB);
    await matrix.setTyping(channel.matrix_room_id, BOB, true, 30000);
    const typing = await nextOfType(watcher, "typing");
    expect(typing.frame).toEqual({ seq: 0, type: "typing", user_ids: [`matrix:${BOB}`] });
    expect(typing.skipped.map((f) => f.type)).toEqual(["member.joined"]);
    await matrix.setTyping(channel.matrix_room_id, BOB, false, 0);
    expect(await watcher.nextJson()).toEqual({ seq: 0, type: "typing", user_ids: [] });
    watcher.close();
  });

  test("REST typing is sent to Matrix as the mapped user", async () => {
    const channel = await channelWithMembers();
    const matrix = server.app.deps.matrix;
    const start = await matrix.sync(null, 0, new AbortController().signal);
    expect((await api(`/${channel.id}/typing`, "user:alice", { typing: true })).status).toBe(200);
    const batch = await matrix.sync(start.nextBatch, 5000, new AbortController().signal);
    expect(batch.ephemeral).toContainEqual({
      room_id: channel.matrix_room_id,
      type: "m.typing",
      content: { user_ids: ["@user-alice:daarion.city"] },
    });
    await api(`/${channel.id}/typing`, "user:alice", { typing: false });
  });
});

describe("read state", () => {
  test("marking read moves the position, the unread count, the socket, NATS and Matrix", async () => {
    const channel = await channelWithMembers("user:bob");
    const m1 = await send(channel.id, "user:bob", "one");
    const m2 = await send(channel.id, "user:bob", "two");
    await send(channel.id, "user:bob", "three");
    await send(channel.id, "user:alice", "mine does not count");
    expect(await unreadIn("user:alice", channel.id)).toBe(3);
    expect(await unreadIn("user:bob", channel.id)).toBe(1);

    const watcher = await ws(channel.id, "user:bob");
    const published: PublishedEvent[] = [];
    const unsubscribe = server.app.deps.events.subscribe((e) => void (e.subject === "messaging.message.read" && published.push(e)));
    const matrix = server.app.deps.matrix;
    const start = await matrix.sync(null, 0, new AbortController().signal);

    const res = await api(`/${channel.id}/read`, "user:alice", { message_id: m2.id });
    expect(res.status).toBe(200);
    const state = await res.json();
    expect(state).toMatchObject({
      channel_id: channel.id,
      member_id: "user:alice",
      last_read_seq: m2.seq,
      last_read_message_id: m2.id,
      last_read_event_id: m2.matrix_event_id,
      unread_count: 1,
    });
    expect(await watcher.nextJson()).toEqual({
      seq: 4,
      type: "read",
      member_id: "user:alice",
      last_read_seq: m2.seq,
      last_read_message_id: m2.id,
      last_read_event_id: m2.matrix_event_id,
      updated_at: state.updated_at,
    });
    expect(await unreadIn("user:alice", channel.id)).toBe(1);
    expect(published).toHaveLength(1);
    expect(published[0]!.payload).toMatchObject({ channel_id: channel.id, member_id: "user:alice", last_read_seq: m2.seq, last_read_message_id: m2.id });

    const batch = await matrix.sync(start.nextBatch, 5000, new AbortController().signal);
    expect(batch.ephemeral).toContainEqual({
      room_id: channel.matrix_room_id,
      type: "m.receipt",
      content: { [m2.matrix_event_id]: { "m.read": { "@user-alice:daarion.city": { ts: expect.any(Number) } } } },
    });

    // Going back is a no-op: same position, no frame, no event.
    const back = await api(`/${channel.id}/read`, "user:alice", { message_id: m1.id });
    expect(back.status).toBe(200);
    expect(await back.json()).toMatchObject({ last_read_seq: m2.seq, unread_count: 1 });
    const next = await send(channel.id, "user:bob", "four");
    expect(await watcher.nextJson()).toMatchObject({ type: "message.created", message: { id: next.id } });
    expect(published).toHaveLength(1);
    expect(await unreadIn("user:alice", channel.id)).toBe(2);
    unsubscribe();
    watcher.close();
  });

  test("bad read input is refused and writes nothing", async () => {
    const channel = await channelWithMembers("user:bob");
    const m1 = await send(channel.id, "user:bob", "one");
    const other = await channelWithMembers();
    const elsewhere = await send(other.id, "user:alice", "elsewhere");
    expect((await api(`/${channel.id}/read`, "user:alice", { message_id: crypto.randomUUID() })).status).toBe(404);
    expect((await api(`/${channel.id}/read`, "user:alice", { message_id: elsewhere.id })).status).toBe(404);
    expect((await api(`/${channel.id}/read`, "user:alice", { message_id: "nope" })).status).toBe(400);
    expect((await api(`/${channel.id}/read`, "user:alice", {})).status).toBe(400);
    expect((await api(`/${channel.id}/read`, "user:alice", { message_id: m1.id, extra: true })).status).toBe(400);
    expect((await api(`/${channel.id}/read`, "user:mallory", { message_id: m1.id })).status).toBe(404);
    const rows = await server.app.deps.sql`select * from channel_read_state where channel_id = ${channel.id}`;
    expect(rows).toHaveLength(0);
    expect(await unreadIn("user:alice", channel.id)).toBe(1);
  });

  test("a read receipt from a Matrix client moves that member's position", async () => {
    const channel = await createChannel(server, "user:alice", { visibility: "public" });
    const watcher = await ws(channel.id, "user:alice");
    const matrix = server.app.deps.matrix;
    await matrix.ensureUser(BOB);
    await matrix.join(channel.matrix_room_id, BOB);
    await nextOfType(watcher, "member.joined");
    const m1 = await send(channel.id, "user:alice", "read me");
    await nextOfType(watcher, "message.created");
    expect(await unreadIn("user:alice", channel.id)).toBe(0);

    await matrix.setReadMarker(channel.matrix_room_id, BOB, m1.matrix_event_id);
    const { frame } = await nextOfType(watcher, "read");
    expect(frame).toMatchObject({ member_id: `matrix:${BOB}`, last_read_seq: m1.seq, last_read_message_id: m1.id, last_read_event_id: m1.matrix_event_id });
    const [row] = await server.app.deps.sql`
      select * from channel_read_state where channel_id = ${channel.id} and member_id = ${`matrix:${BOB}`}`;
    expect(row).toMatchObject({ last_read_event_id: m1.matrix_event_id });
    expect(Number(row!.last_read_seq)).toBe(m1.seq);
    watcher.close();
  });

  test("the listing's unread count leaves out deleted messages and what came before joining", async () => {
    const channel = await createChannel(server, "user:alice", { visibility: "public" });
    await send(channel.id, "user:alice", "before carol");
    const carolFirst = await send(channel.id, "user:carol", "carol joins by writing");
    const later = await send(channel.id, "user:alice", "after carol");
    await send(channel.id, "user:alice", "deleted later");
    await server.app.deps.sql`update messages set deleted_at = now() where channel_id = ${channel.id} and content_preview = 'deleted later'`;
    expect(carolFirst.seq).toBe(2);
    expect(later.seq).toBe(3);
    expect(await unreadIn("user:carol", channel.id)).toBe(1);
    // A public channel someone is not a member of shows no unread messages.
    expect(await unreadIn("user:stranger", channel.id)).toBe(0);
  });
});
