import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ReceiptType, RoomEvent, RoomMemberEvent, type MatrixClient, type MatrixEvent as SdkEvent, type RoomMember } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

/** Typing and read state between the DAARION API and a real Matrix client (matrix-js-sdk as Element) on Synapse. */
setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("Typing and read state (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;
  const alice = () => `@user-alice:${synapse!.serverName}`;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
  }, 120000);

  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  const api = (path: string, as: string, json?: unknown) =>
    server.api(`/api/messaging/channels${path}`, json === undefined ? { as } : { method: "POST", as, json });
  const ws = (channelId: string, user: string) => WsInbox.open(`${server.wsUrl}/ws/messaging/${channelId}?user_id=${encodeURIComponent(user)}`);

  /** The next frame of `type`, skipping others. */
  async function nextOfType(inbox: WsInbox, type: string, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = await inbox.nextJson(Math.max(1, deadline - Date.now()));
      if (frame.type === type) return frame;
    }
  }

  function untilClient<T>(subscribe: (done: (value: T) => void) => () => void, what: string, timeoutMs = 20000): Promise<T> {
    return new Promise((resolve, reject) => {
      let unsubscribe = () => {};
      const timer = setTimeout(() => {
        unsubscribe();
        reject(new Error(`the Matrix client never saw ${what}`));
      }, timeoutMs);
      unsubscribe = subscribe((value) => {
        clearTimeout(timer);
        unsubscribe();
        resolve(value);
      });
    });
  }

  const memberTyping = (roomId: string, userId: string, typing: boolean) =>
    untilClient<void>((done) => {
      const onTyping = (_e: SdkEvent, member: RoomMember) => {
        if (member.roomId === roomId && member.userId === userId && member.typing === typing) done();
      };
      client.on(RoomMemberEvent.Typing, onTyping);
      return () => client.off(RoomMemberEvent.Typing, onTyping);
    }, `${userId} typing=${typing}`);

  const timelineEvent = (roomId: string, pred: (e: SdkEvent) => boolean) =>
    untilClient<SdkEvent>((done) => {
      const onEvent = (e: SdkEvent) => {
        if (e.getRoomId() === roomId && pred(e)) done(e);
      };
      client.on(RoomEvent.Timeline, onEvent);
      return () => client.off(RoomEvent.Timeline, onEvent);
    }, "the timeline event");

  async function joinedChannel() {
    const channel = await createChannel(server, "user:alice", { visibility: "public" });
    const watcher = await ws(channel.id, "user:alice");
    await client.joinRoom(channel.matrix_alias);
    expect(await nextOfType(watcher, "member.joined")).toMatchObject({ member: { member_id: `matrix:${bob.userId}` } });
    return { channel, watcher };
  }

  test("typing over REST shows in the Matrix client as the mapped user, and stops", async () => {
    const { channel, watcher } = await joinedChannel();
    const typing = memberTyping(channel.matrix_room_id, alice(), true);
    expect((await api(`/${channel.id}/typing`, "user:alice", { typing: true })).status).toBe(200);
    await typing;
    expect(await nextOfType(watcher, "typing")).toEqual({ seq: 0, type: "typing", user_ids: ["user:alice"] });
    const stopped = memberTyping(channel.matrix_room_id, alice(), false);
    expect((await api(`/${channel.id}/typing`, "user:alice", { typing: false })).status).toBe(200);
    await stopped;
    expect(await nextOfType(watcher, "typing")).toEqual({ seq: 0, type: "typing", user_ids: [] });
    watcher.close();
  });

  test("typing in the Matrix client reaches the WebSocket, and stops", async () => {
    const { channel, watcher } = await joinedChannel();
    await client.sendTyping(channel.matrix_room_id, true, 30000);
    expect(await nextOfType(watcher, "typing")).toEqual({ seq: 0, type: "typing", user_ids: [`matrix:${bob.userId}`] });
    await client.sendTyping(channel.matrix_room_id, false, 0);
    expect(await nextOfType(watcher, "typing")).toEqual({ seq: 0, type: "typing", user_ids: [] });
    watcher.close();
  });

  test("marking read over REST moves the mapped user's receipt in the Matrix client", async () => {
    const { channel, watcher } = await joinedChannel();
    const seen = timelineEvent(channel.matrix_room_id, (e) => e.getContent().body === "from bob");
    const { event_id } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "from bob" } as never);
    await seen;
    const created = await nextOfType(watcher, "message.created");
    expect(created.message.matrix_event_id).toBe(event_id);
    expect((await (await api("", "user:alice")).json()).find((c: { id: string }) => c.id === channel.id).unread_count).toBe(1);

    const room = client.getRoom(channel.matrix_room_id)!;
    const receipt = untilClient<void>((done) => {
      const onReceipt = () => {
        if (room.getEventReadUpTo(alice(), true) === event_id) done();
      };
      client.on(RoomEvent.Receipt, onReceipt);
      return () => client.off(RoomEvent.Receipt, onReceipt);
    }, "alice's receipt");
    const res = await api(`/${channel.id}/read`, "user:alice", { message_id: created.message.id });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ last_read_event_id: event_id, unread_count: 0 });
    await receipt;
    expect(await nextOfType(watcher, "read")).toMatchObject({ member_id: "user:alice", last_read_event_id: event_id });
    expect((await (await api("", "user:alice")).json()).find((c: { id: string }) => c.id === channel.id).unread_count).toBe(0);
    watcher.close();
  });

  test("a read receipt from the Matrix client reaches the index and the WebSocket", async () => {
    const { channel, watcher } = await joinedChannel();
    const seen = timelineEvent(channel.matrix_room_id, (e) => e.getContent().body === "read this, Bob");
    const sent = await (await api(`/${channel.id}/messages`, "user:alice", { text: "read this, Bob" })).json();
    const event = await seen;
    await nextOfType(watcher, "message.created");
    await client.sendReadReceipt(event, ReceiptType.Read, true);
    expect(await nextOfType(watcher, "read")).toMatchObject({
      member_id: `matrix:${bob.userId}`,
      last_read_seq: sent.seq,
      last_read_message_id: sent.id,
      last_read_event_id: sent.matrix_event_id,
    });
    const [row] = await server.app.deps.sql`
      select * from channel_read_state where channel_id = ${channel.id} and member_id = ${`matrix:${bob.userId}`}`;
    expect(row).toMatchObject({ last_read_event_id: sent.matrix_event_id });
    watcher.close();
  });
});
