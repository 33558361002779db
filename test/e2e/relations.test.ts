import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv, nextRoomEvent } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

/** Reactions, edits and deletion between the REST API and a Matrix client (matrix-js-sdk) on a real Synapse. */
setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("Reactions, edits and deletion (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
  }, 120000);

  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);


  /** The next frame that is not about membership (Bob's join, first writes). */
  async function nextFrame(inbox: WsInbox): Promise<any> {
    for (;;) {
      const frame = await inbox.nextJson(20000);
      if (frame.type !== "member.joined") return frame;
    }
  }

  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
  const post = async (channelId: string, as: string, text: string) => {
    const res = await api(`/${channelId}/messages`, { method: "POST", as, json: { text } });
    expect(res.status).toBe(201);
    return res.json();
  };
  const listing = async (channelId: string, as: string) => (await api(`/${channelId}/messages`, { as })).json();

  async function channelWithBob() {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.joined", member: { member_id: `matrix:${bob.userId}` } });
    return { channel, inbox };
  }

  test("reactions travel both ways, and removing one redacts it", async () => {
    const { channel, inbox } = await channelWithBob();
    const msg = await post(channel.id, "user:alice", "react to this");
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.created", message: { id: msg.id } });

    const seenReaction = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.reaction");
    const res = await api(`/${channel.id}/messages/${msg.id}/reactions`, { method: "POST", as: "user:alice", json: { emoji: "👍" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message_id: msg.id, emoji: "👍", count: 1, me: true });
    const reaction = await seenReaction;
    expect(reaction.getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    expect(reaction.getContent()).toEqual({ "m.relates_to": { rel_type: "m.annotation", event_id: msg.matrix_event_id, key: "👍" } });
    expect(await nextFrame(inbox)).toMatchObject({ type: "reaction.added", reactor_id: "user:alice", count: 1 });
    // Asking again is not an error, and Matrix gets no second annotation.
    const again = await api(`/${channel.id}/messages/${msg.id}/reactions`, { method: "POST", as: "user:alice", json: { emoji: "👍" } });
    expect(again.status).toBe(200);

    const { event_id: bobsReaction } = await client.sendEvent(channel.matrix_room_id, "m.reaction" as never, {
      "m.relates_to": { rel_type: "m.annotation", event_id: msg.matrix_event_id, key: "🎉" },
    } as never);
    expect(await nextFrame(inbox)).toEqual({ seq: 1, type: "reaction.added", message_id: msg.id, emoji: "🎉", reactor_id: `matrix:${bob.userId}`, count: 1 });
    expect((await listing(channel.id, "user:alice"))[0].reactions).toEqual([
      { emoji: "👍", count: 1, me: true },
      { emoji: "🎉", count: 1, me: false },
    ]);

    const seenRedaction = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.redaction" && e.getAssociatedId() === reaction.getId());
    const removed = await api(`/${channel.id}/messages/${msg.id}/reactions?emoji=${encodeURIComponent("👍")}`, { method: "DELETE", as: "user:alice" });
    expect(removed.status).toBe(200);
    expect((await seenRedaction).getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    expect(await nextFrame(inbox)).toMatchObject({ type: "reaction.removed", emoji: "👍", count: 0 });

    await client.redactEvent(channel.matrix_room_id, bobsReaction);
    expect(await nextFrame(inbox)).toEqual({ seq: 1, type: "reaction.removed", message_id: msg.id, emoji: "🎉", reactor_id: `matrix:${bob.userId}`, count: 0 });
    expect((await listing(channel.id, "user:alice"))[0].reactions).toEqual([]);

    // Adding back after removal is a new annotation Synapse accepts.
    const readd = await api(`/${channel.id}/messages/${msg.id}/reactions`, { method: "POST", as: "user:alice", json: { emoji: "👍" } });
    expect(readd.status).toBe(200);
    expect(await nextFrame(inbox)).toMatchObject({ type: "reaction.added", reactor_id: "user:alice", count: 1 });
    inbox.close();
  });

  test("edits travel both ways as m.replace, and neither side sees a new message", async () => {
    const { channel, inbox } = await channelWithBob();
    const msg = await post(channel.id, "user:alice", "helo");
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.created", message: { id: msg.id } });

    const seenEdit = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent()["m.relates_to"]?.rel_type === "m.replace");
    const res = await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:alice", json: { text: "hello" } });
    expect(res.status).toBe(200);
    const edit = await seenEdit;
    expect(edit.getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    expect(edit.getContent()).toEqual({
      msgtype: "m.text",
      body: "* hello",
      "m.new_content": { msgtype: "m.text", body: "hello" },
      "m.relates_to": { rel_type: "m.replace", event_id: msg.matrix_event_id },
    });
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.updated", message: { id: msg.id, content_preview: "hello" } });
    expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "PATCH", as: "user:bob", json: { text: "not yours" } })).status).toBe(403);

    const { event_id: original } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "teh cat" } as never);
    const created = await nextFrame(inbox);
    expect(created).toMatchObject({ type: "message.created", message: { matrix_event_id: original } });
    await client.sendMessage(channel.matrix_room_id, {
      msgtype: "m.text",
      body: "* the cat",
      "m.new_content": { msgtype: "m.text", body: "the cat" },
      "m.relates_to": { rel_type: "m.replace", event_id: original },
    } as never);
    expect(await nextFrame(inbox)).toMatchObject({
      type: "message.updated",
      seq: created.seq,
      message: { id: created.message.id, content_preview: "the cat", sender_id: `matrix:${bob.userId}` },
    });
    const history = await (await api(`/${channel.id}/messages/${created.message.id}/edits`, { as: "user:alice" })).json();
    expect(history.map((v: { content_preview: string }) => v.content_preview)).toEqual(["teh cat", "the cat"]);
    const list = await listing(channel.id, "user:alice");
    expect(list.map((m: { content_preview: string }) => m.content_preview)).toEqual(["the cat", "hello"]);
    inbox.close();
  });

  test("deletion travels both ways as redaction; a moderator may delete a Matrix user's message", async () => {
    const { channel, inbox } = await channelWithBob();
    const msg = await post(channel.id, "user:alice", "delete me");
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.created" });

    const seenRedaction = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.redaction" && e.getAssociatedId() === msg.matrix_event_id);
    expect((await api(`/${channel.id}/messages/${msg.id}`, { method: "DELETE", as: "user:bob" })).status).toBe(403);
    const res = await api(`/${channel.id}/messages/${msg.id}`, { method: "DELETE", as: "user:alice" });
    expect(res.status).toBe(200);
    expect((await seenRedaction).getSender()).toBe(`@user-alice:${synapse!.serverName}`);
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.deleted", message_id: msg.id, deleted_by: "user:alice" });

    // The channel's owner removes Bob's message: Synapse accepts it from the room creator's account.
    const { event_id: spam } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "spam" } as never);
    const spamFrame = await nextFrame(inbox);
    const seenModeration = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.redaction" && e.getAssociatedId() === spam);
    expect((await api(`/${channel.id}/messages/${spamFrame.message.id}`, { method: "DELETE", as: "user:admin" })).status).toBe(200);
    expect((await seenModeration).getSender()).toBe(`@user-admin:${synapse!.serverName}`);
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.deleted", message_id: spamFrame.message.id, deleted_by: "user:admin" });

    // Bob deletes his own message in the client.
    const { event_id: oops } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "oops" } as never);
    const oopsFrame = await nextFrame(inbox);
    expect(oopsFrame.message.matrix_event_id).toBe(oops);
    await client.redactEvent(channel.matrix_room_id, oops);
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.deleted", seq: oopsFrame.seq, deleted_by: `matrix:${bob.userId}` });
    expect(await listing(channel.id, "user:alice")).toEqual([]);
    inbox.close();
  });
});
