import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RoomEvent, RoomMemberEvent, type MatrixClient, type MatrixEvent as SdkEvent, type RoomMember } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv, nextRoomEvent } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

/**
 * The Element round trip against a real Synapse: matrix-js-sdk plays the Element user.
 * The service runs on a database of this suite's own, so it can be restarted on it.
 */
// Each case waits on a real homeserver round trip, under its own timeouts.
setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("Element round trip (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;
  let env: Record<string, string>;
  let dropDb: () => Promise<void> = async () => {};
  const dataDir = mkdtempSync(join(tmpdir(), "daarion-e2e-"));

  beforeAll(async () => {
    if (databaseUrl) {
      const fresh = await freshPostgresDatabase("daarion_e2e");
      dropDb = fresh.drop;
      env = synapseServiceEnv({ DATABASE_URL: fresh.url, SYNC_TIMEOUT_MS: "2000" });
    } else {
      env = synapseServiceEnv({ DATA_DIR: dataDir, SYNC_TIMEOUT_MS: "2000" });
    }
    server = await startTestServer(env);
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
    await client.setDisplayName("Bob Builder");
  }, 120000);

  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
    await dropDb();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60000);


  const messages = async (channelId: string) =>
    (await (await server.api(`/api/messaging/channels/${channelId}/messages?limit=200`, { as: "user:admin" })).json()) as Array<{
      id: string;
      seq: number;
      matrix_event_id: string;
      sender_id: string;
      sender_display_name: string | null;
      content_preview: string;
      reply_to: string | null;
    }>;

  /** Waits (by long-polling the API, a bounded number of times) until `pred` holds for the listing. */
  async function untilListed(channelId: string, pred: (list: Awaited<ReturnType<typeof messages>>) => boolean, timeoutMs = 20000) {
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channelId}?user_id=user:admin`);
    try {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const list = await messages(channelId);
        if (pred(list)) return list;
        if (Date.now() > deadline) throw new Error(`listing never matched: ${JSON.stringify(list.map((m) => m.content_preview))}`);
        // Every index change is pushed on the channel's socket: wait for the next frame.
        await inbox.next(Math.max(1, deadline - Date.now())).catch(() => undefined);
      }
    } finally {
      inbox.close();
    }
  }

  test("a) a channel created over REST is joinable by its alias, with its name and topic", async () => {
    const channel = await createChannel(server, "user:admin", { name: "Town Square", description: "Everything DAARION", visibility: "public" });
    expect(channel.matrix_alias).toBe(`#${channel.slug}-daarion:${synapse!.serverName}`);
    const room = await client.joinRoom(channel.matrix_alias);
    expect(room.roomId).toBe(channel.matrix_room_id);
    const name = await client.getStateEvent(room.roomId, "m.room.name", "");
    const topic = await client.getStateEvent(room.roomId, "m.room.topic", "");
    expect(name).toEqual({ name: "Town Square" });
    expect(topic).toMatchObject({ topic: "Everything DAARION" });
    const joinRules = await client.getStateEvent(room.roomId, "m.room.join_rules", "");
    expect(joinRules).toEqual({ join_rule: "public" });
  });

  test("b) REST and agent messages reach the Matrix client from the mapped senders", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const seenText = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().body === "hello from the UI");
    const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "hello from the UI" } });
    expect(res.status).toBe(201);
    const sent = await res.json();
    const text = await seenText;
    expect(text.getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    expect(text.getId()).toBe(sent.matrix_event_id);
    expect(text.getContent()).toEqual({ msgtype: "m.text", body: "hello from the UI" });

    await server.api(`/api/messaging/channels/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "agent:sofia", role: "agent" } });
    const seenNotice = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().body === "agent speaking");
    const posted = await server.api(`/internal/agents/agent:sofia/post-to-channel`, { method: "POST", json: { channel_id: channel.id, text: "agent speaking" } });
    expect(posted.status).toBe(200);
    const notice = await seenNotice;
    expect(notice.getSender()).toBe(`@agent-sofia:${synapse!.serverName}`);
    expect(notice.getContent().msgtype).toBe("m.notice");
  });

  test("c) a message from the Matrix client appears exactly once in the listing and on the WebSocket", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    const { event_id } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "hi from Element" } as never);

    const joined = await inbox.nextJson(20000);
    expect(joined).toMatchObject({ type: "member.joined", member: { member_id: `matrix:${bob.userId}`, display_name: "Bob Builder" } });
    const frame = await inbox.nextJson(20000);
    expect(frame).toMatchObject({
      type: "message.created",
      seq: 1,
      message: {
        matrix_event_id: event_id,
        sender_id: `matrix:${bob.userId}`,
        sender_type: "human",
        sender_display_name: "Bob Builder",
        content_preview: "hi from Element",
      },
    });
    // One frame only: the next thing on the socket is our own pong.
    inbox.ws.send("ping");
    expect(await inbox.next()).toBe("pong");
    inbox.close();
    const list = await messages(channel.id);
    expect(list.filter((m) => m.matrix_event_id === event_id)).toHaveLength(1);
  });

  test("d) replies link to their parents on both sides", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const parent = await (
      await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "question?" } })
    ).json();
    // Element replies to the REST message, with an old-style fallback in the body.
    const fallback = `> <@user-alice:${synapse!.serverName}> question?\n\nanswer!`;
    const { event_id: replyId } = await client.sendMessage(channel.matrix_room_id, {
      msgtype: "m.text",
      body: fallback,
      "m.relates_to": { "m.in_reply_to": { event_id: parent.matrix_event_id } },
    } as never);
    const list = await untilListed(channel.id, (l) => l.some((m) => m.matrix_event_id === replyId));
    expect(list.find((m) => m.matrix_event_id === replyId)).toMatchObject({ reply_to: parent.id, content_preview: "answer!" });

    // The UI replies to Element's message: the Matrix client sees m.in_reply_to.
    const bobsMessage = list.find((m) => m.matrix_event_id === replyId)!;
    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().body === "thanks");
    const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, {
      method: "POST",
      as: "user:alice",
      json: { text: "thanks", reply_to: bobsMessage.id },
    });
    expect(res.status).toBe(201);
    expect((await seen).getContent()["m.relates_to"]).toEqual({ "m.in_reply_to": { event_id: replyId } });
  });

  test("the full content of a Matrix user's message: GET one message answers 200 with what Bob sent", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    // Longer than the index's 500-character preview: only Matrix has all of it.
    const content = { msgtype: "m.text", body: `Bob's long story: ${"and then ".repeat(80)}the end.` };
    const { event_id } = await client.sendMessage(channel.matrix_room_id, content as never);
    const list = await untilListed(channel.id, (l) => l.some((m) => m.matrix_event_id === event_id));
    const listed = list.find((m) => m.matrix_event_id === event_id)!;
    expect(listed.sender_id).toBe(`matrix:${bob.userId}`);
    expect(listed.content_preview.length).toBeLessThan(content.body.length);
    const res = await server.api(`/api/messaging/channels/${channel.id}/messages/${listed.id}`, { as: "user:reader" });
    expect(res.status).toBe(200);
    const detail = await res.json();
    expect(detail).toMatchObject({ id: listed.id, sender_id: `matrix:${bob.userId}`, matrix_event_id: event_id });
    expect(detail.content).toEqual(content);
  });

  test("a refused first write (unknown reply_to or thread_id) does not join the sender to the Matrix room", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const local = `hasty${Date.now().toString(36)}`;
    const matrixId = `@user-${local}:${synapse!.serverName}`;
    const send = (json: Record<string, unknown>) =>
      server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: `user:${local}`, json });
    const badReply = await send({ text: "re: nothing", reply_to: crypto.randomUUID() });
    expect(badReply.status).toBe(400);
    expect((await badReply.json()).error).toBe("INVALID_REPLY_TO");
    const badThread = await send({ text: "in no thread", thread_id: crypto.randomUUID() });
    expect(badThread.status).toBe(400);
    expect((await badThread.json()).error).toBe("INVALID_THREAD");
    // The room as Bob's client sees it: the refused sender never joined.
    const { joined } = await client.getJoinedRoomMembers(channel.matrix_room_id);
    expect(Object.keys(joined)).toContain(bob.userId);
    expect(Object.keys(joined)).not.toContain(matrixId);
    const { sql } = server.app.deps;
    expect(await sql`select 1 from channel_members where channel_id = ${channel.id} and member_id = ${`user:${local}`}`).toHaveLength(0);
    expect(await sql`select 1 from channel_events where channel_id = ${channel.id} and actor_id = ${`user:${local}`}`).toHaveLength(0);

    // A good first write joins, in Matrix too.
    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().body === "now for real");
    expect((await send({ text: "now for real" })).status).toBe(201);
    expect((await seen).getSender()).toBe(matrixId);
    expect(Object.keys((await client.getJoinedRoomMembers(channel.matrix_room_id)).joined)).toContain(matrixId);
  });

  test("membership and room changes made in Matrix sync back", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.joined", member: { member_id: `matrix:${bob.userId}` } });
    await client.leave(channel.matrix_room_id);
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.left", member: { member_id: `matrix:${bob.userId}` } });
    const members = await (await server.api(`/api/messaging/channels/${channel.id}/members`, { as: "user:admin" })).json();
    expect(members.map((m: { member_id: string }) => m.member_id)).not.toContain(`matrix:${bob.userId}`);

    // The room's owner renames it from a Matrix client: the channel follows.
    await server.app.deps.matrix.sendState(channel.matrix_room_id, `@user-admin:${synapse!.serverName}`, "m.room.name", "", { name: "Renamed in Element" });
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "channel.updated", channel: { name: "Renamed in Element" } });
    inbox.close();
  });

  test("a Matrix user invited over REST gets the invite in the client, and the rights once they accept", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "private" });
    const invited = new Promise<void>((resolve) => {
      const onMembership = (_e: SdkEvent, member: RoomMember) => {
        if (member.roomId === channel.matrix_room_id && member.userId === bob.userId && member.membership === "invite") {
          client.off(RoomMemberEvent.Membership, onMembership);
          resolve();
        }
      };
      client.on(RoomMemberEvent.Membership, onMembership);
    });
    const res = await server.api(`/api/messaging/channels/${channel.id}/members`, {
      method: "POST",
      as: "user:admin",
      json: { member_id: `matrix:${bob.userId}`, role: "admin", can_invite: true },
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ status: "invited", member_id: `matrix:${bob.userId}`, matrix_user_id: bob.userId, role: "admin" });
    // Not a member yet: the private channel is still closed to him.
    expect((await server.api(`/api/messaging/channels/${channel.id}/members`, { as: "user:admin" })).status).toBe(200);
    await invited;
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);
    await client.joinRoom(channel.matrix_room_id);
    expect(await inbox.nextJson(20000)).toMatchObject({
      type: "member.joined",
      member: { member_id: `matrix:${bob.userId}`, role: "admin", can_invite: true, invited_by: "user:admin", display_name: "Bob Builder" },
    });
    inbox.close();
  });

  test("e) restarting the service while the Matrix client keeps sending loses and doubles nothing", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const bodies = Array.from({ length: 12 }, (_, i) => `burst ${i}`);
    const sending = (async () => {
      for (const body of bodies) await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body } as never);
    })();
    // Restart in the middle of the burst, on the same database.
    await nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent().body === "burst 3");
    await server.app.stop();
    await sending; // the rest is sent while the service is down
    server = await startTestServer(env);
    const list = await untilListed(channel.id, (l) => bodies.every((b) => l.some((m) => m.content_preview === b)), 30000);
    const burst = list.filter((m) => m.content_preview.startsWith("burst "));
    expect(burst.map((m) => m.content_preview).sort()).toEqual([...bodies].sort());
    const seqs = list.map((m) => m.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  });

  test("a gap longer than one /sync timeline is backfilled with /messages, in order", async () => {
    // A server whose /sync returns at most 3 events per room: 10 messages written while it is
    // down come back as a `limited` timeline, and the rest must be fetched with /messages.
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    await server.app.stop();
    const bodies = Array.from({ length: 10 }, (_, i) => `gap ${i}`);
    for (const body of bodies) await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body } as never);
    server = await startTestServer({ ...env, MATRIX_SYNC_TIMELINE_LIMIT: "3" });
    const list = await untilListed(channel.id, (l) => bodies.every((b) => l.some((m) => m.content_preview === b)), 30000);
    const gap = list.filter((m) => m.content_preview.startsWith("gap ")).sort((a, b) => a.seq - b.seq);
    expect(gap.map((m) => m.content_preview)).toEqual(bodies);
    await server.app.stop();
    server = await startTestServer(env);
  });

  test("f) a send while Synapse is stopped is accepted as pending (202), leaves no half-written row, and is delivered when Synapse returns", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    await client.joinRoom(channel.matrix_alias);
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    // Alice is a member already (her first write joined her): the outage hits the send itself.
    const hello = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "hello" } });
    expect(hello.status).toBe(201);
    const repo = join(import.meta.dir, "..", "..");
    const stop = Bun.spawnSync(["bun", "run", "synapse", "stop"], { cwd: repo, env: process.env });
    expect(stop.exitCode).toBe(0);
    let pending: { id: string; seq: number };
    try {
      const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "into the void" } });
      expect(res.status).toBe(202);
      pending = await res.json();
      expect(pending).toMatchObject({ status: "pending", matrix_event_id: null, seq: 2 });
      // Durable and whole: one row, pending, holding what it will send.
      const rows = await server.app.deps.sql`select delivery_state, outbox_content from messages where channel_id = ${channel.id} and delivery_state <> 'sent'`;
      expect([...rows]).toEqual([{ delivery_state: "pending", outbox_content: { msgtype: "m.text", body: "into the void" } }]);
      let frame = await inbox.nextJson(20000);
      while (frame.type !== "message.created" || frame.message.id !== pending.id) frame = await inbox.nextJson(20000);
      expect(frame.message).toMatchObject({ id: pending.id, status: "pending" });
    } finally {
      const start = Bun.spawnSync(["bun", "run", "synapse", "start"], { cwd: repo, env: process.env });
      expect(start.exitCode).toBe(0);
    }
    // Synapse is back: the outbox delivers it (once), the socket hears it, the Element user sees it.
    const seen = new Promise<SdkEvent>((resolve) => {
      const onEvent = (e: SdkEvent) => {
        if (e.getRoomId() === channel.matrix_room_id && e.getContent().body === "into the void") {
          client.off(RoomEvent.Timeline, onEvent);
          resolve(e);
        }
      };
      client.on(RoomEvent.Timeline, onEvent);
    });
    let update = await inbox.nextJson(60000);
    while (update.type !== "message.updated") update = await inbox.nextJson(60000);
    expect(update.message).toMatchObject({ id: pending!.id, status: "sent", seq: 2 });
    expect((await seen).getId()).toBe(update.message.matrix_event_id);
    inbox.close();
    const after = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "back again" } });
    expect(after.status).toBe(201);
    expect((await after.json()).seq).toBe(3);
  }, 180000);
});
