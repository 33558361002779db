import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { PublishedLog } from "../helpers/published.ts";

let server: TestServer;
const log = new PublishedLog();
beforeAll(async () => {
  server = await startTestServer();
  log.record(server.app.deps.events);
}, 60000);
afterAll(() => server?.stop(), 60000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);

const nextPublished = (subject: string, pred: (payload: any) => boolean, timeoutMs = 5000) => log.next(subject, pred, timeoutMs);

async function createEncrypted(owner: string, visibility = "private") {
  const res = await api("", {
    method: "POST",
    as: owner,
    json: { slug: uniqueSlug("secret"), name: "Secret", microdao_id: "microdao:daarion", visibility, is_encrypted: true },
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; matrix_room_id: string; is_encrypted: boolean };
}

/** A Matrix user writing straight into the (local) homeserver, as an E2EE client would. */
async function matrixClientIn(roomId: string) {
  const bob = `@bob${Date.now().toString(36)}:daarion.city`;
  const { matrix } = server.app.deps;
  await matrix.ensureUser(bob);
  await matrix.join(roomId, bob);
  return { id: bob, send: (type: string, content: Record<string, unknown>) => matrix.sendEvent(roomId, bob, type, content, crypto.randomUUID()).then((r) => r.eventId) };
}

const megolm = (extra: Record<string, unknown> = {}) => ({
  algorithm: "m.megolm.v1.aes-sha2",
  ciphertext: "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg...",
  device_id: "RJYKSTBOIE",
  sender_key: "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
  session_id: "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
  ...extra,
});

async function untilListed(channelId: string, pred: (m: any) => boolean, as = "user:owner") {
  const deadline = Date.now() + 5000;
  for (;;) {
    const list = (await (await api(`/${channelId}/messages`, { as })).json()) as any[];
    const hit = list.find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`not listed: ${JSON.stringify(list)}`);
    await Bun.sleep(25);
  }
}

describe("confidential channels", () => {
  test("is_encrypted creates the room with m.room.encryption", async () => {
    const channel = await createEncrypted("user:owner");
    expect(channel.is_encrypted).toBe(true);
    expect(await server.app.deps.matrix.getState(channel.matrix_room_id, "m.room.encryption", "")).toEqual({ algorithm: "m.megolm.v1.aes-sha2" });
    const plain = await createChannel(server, "user:owner");
    expect(await server.app.deps.matrix.getState(plain.matrix_room_id, "m.room.encryption", "")).toBeNull();
  });

  test("REST sends, thread replies, edits and uploads are refused with 409 CHANNEL_ENCRYPTED, and nothing is written", async () => {
    const channel = await createEncrypted("user:owner");
    const refusal = { error: "CHANNEL_ENCRYPTED", message: expect.stringContaining("end-to-end encrypted"), request_id: expect.any(String) };
    const send = await api(`/${channel.id}/messages`, { method: "POST", as: "user:owner", json: { text: "the launch code is 1234" } });
    expect(send.status).toBe(409);
    expect(await send.json()).toEqual(refusal);
    const edit = await api(`/${channel.id}/messages/${crypto.randomUUID()}`, { method: "PATCH", as: "user:owner", json: { text: "x" } });
    expect(edit.status).toBe(409);
    expect(await edit.json()).toEqual(refusal);
    expect((await api(`/${channel.id}/members`, { method: "POST", as: "user:owner", json: { member_id: "agent:sofia" } })).status).toBe(201);
    const agentPost = await server.api("/internal/agents/agent:sofia/post-to-channel", { method: "POST", as: "agent:sofia", json: { channel_id: channel.id, text: "agent secret" } });
    expect(agentPost.status).toBe(409);
    expect(await agentPost.json()).toEqual(refusal);
    const form = new FormData();
    form.set("file", new File(["secret"], "s.txt", { type: "text/plain" }));
    const upload = await server.api(`/api/messaging/channels/${channel.id}/files`, { method: "POST", as: "user:owner", body: form });
    expect(upload.status).toBe(409);
    expect(await upload.json()).toEqual(refusal);

    const { sql } = server.app.deps;
    expect(await sql`select id from messages where channel_id = ${channel.id}`).toHaveLength(0);
    const sent = await sql`select event_id from local_matrix_events where room_id = ${channel.matrix_room_id} and type = 'm.room.message'`;
    expect(sent).toHaveLength(0);
    expect(await sql`select 1 from local_matrix_media where uploader = '@user-owner:daarion.city'`).toHaveLength(0);
  });

  test("an encrypted event from an E2EE client is indexed as a message without content", async () => {
    const channel = await createEncrypted("user:owner", "public");
    const bob = await matrixClientIn(channel.matrix_room_id);
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const eventId = await bob.send("m.room.encrypted", megolm());
    let frame = await inbox.nextJson();
    while (frame.type !== "message.created") frame = await inbox.nextJson();
    expect(frame).toMatchObject({ type: "message.created", message: { matrix_event_id: eventId, content_preview: "", content_type: "encrypted", matrix_type: "m.room.encrypted" } });
    const listed = await untilListed(channel.id, (m) => m.matrix_event_id === eventId);
    expect(listed).toMatchObject({ content_preview: "", content_type: "encrypted", msgtype: null, sender_id: `matrix:${bob.id}` });
    expect(await nextPublished("messaging.message.created", (p) => p.matrix_event_id === eventId)).toMatchObject({ preview: "" });

    // An encrypted thread reply keeps its (cleartext) relation: the thread is known, its text is not.
    const replyId = await bob.send("m.room.encrypted", megolm({ "m.relates_to": { rel_type: "m.thread", event_id: eventId } }));
    const thread = async () => (await (await api(`/${channel.id}/messages/${listed.id}/thread`, { as: "user:owner" })).json()) as any;
    let replies = JSON.stringify(await thread());
    for (const deadline = Date.now() + 5000; !replies.includes(replyId) && Date.now() < deadline; replies = JSON.stringify(await thread())) await Bun.sleep(25);
    const [reply] = await server.app.deps.sql`select thread_id, content_preview, content_type from messages where matrix_event_id = ${replyId}`;
    expect(reply).toEqual({ thread_id: listed.id, content_preview: "", content_type: "encrypted" });

    // An encrypted reaction is not a message.
    const reactionId = await bob.send("m.room.encrypted", megolm({ "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key: "👍" } }));
    const marker = await bob.send("m.room.encrypted", megolm());
    await untilListed(channel.id, (m) => m.matrix_event_id === marker);
    const { sql } = server.app.deps;
    expect(await sql`select id from messages where matrix_event_id = ${reactionId}`).toHaveLength(0);
    expect(await sql`select event_id from matrix_inbox where event_id = ${reactionId}`).toHaveLength(0);
    inbox.ws.close();
  });

  test("plaintext from a Matrix client in a confidential channel is not kept, and search skips the channel", async () => {
    const word = `zebra${Date.now().toString(36)}`;
    const secret = await createEncrypted("user:owner", "public");
    const open = await createChannel(server, "user:owner");
    const bob = await matrixClientIn(secret.matrix_room_id);
    const eventId = await bob.send("m.room.message", { msgtype: "m.text", body: `the ${word} is loose` });
    const listed = await untilListed(secret.id, (m) => m.matrix_event_id === eventId);
    expect(listed.content_preview).toBe("");
    const [row] = await server.app.deps.sql`select content_preview, search_vector::text as v from messages where id = ${listed.id}`;
    expect(row!.content_preview).toBe("");
    expect(row!.v).not.toContain(word);

    // An edit from the client does not bring the text back either.
    const editId = await bob.send("m.room.message", {
      msgtype: "m.text",
      body: `* the ${word} is caught`,
      "m.new_content": { msgtype: "m.text", body: `the ${word} is caught` },
      "m.relates_to": { rel_type: "m.replace", event_id: eventId },
    });
    await nextPublished("messaging.message.updated", (p) => p.matrix_event_id === editId);
    const [edited] = await server.app.deps.sql`select m.content_preview, (select string_agg(content_preview, '') from message_edits where message_id = m.id) as edits from messages m where id = ${listed.id}`;
    expect(edited!.content_preview).toBe("");
    expect(edited!.edits ?? "").not.toContain(word);

    expect((await api(`/${open.id}/messages`, { method: "POST", as: "user:owner", json: { text: `a ${word} in the open` } })).status).toBe(201);
    const hits = (await (await server.api(`/api/messaging/search?q=${word}`, { as: "user:owner" })).json()) as any[];
    expect(hits.map((h) => h.channel_id)).toEqual([open.id]);
    const scoped = await server.api(`/api/messaging/search?q=${word}&channel_id=${secret.id}`, { as: "user:owner" });
    expect(await scoped.json()).toEqual([]);
  });
});
