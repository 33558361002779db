import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
}, 60000);
afterAll(() => server?.stop(), 60000);

const post = (channelId: string, as: string, text: string) =>
  server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json: { text } });
const wsUrl = (channelId: string, user?: string) =>
  `${server.wsUrl}/ws/messaging/${channelId}${user ? `?user_id=${encodeURIComponent(user)}` : ""}`;

/** The refusal an upgrade gets, read as a plain HTTP request with the upgrade headers. */
async function upgradeRefusal(channelId: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}/ws/messaging/${channelId}`, {
    headers: {
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": btoa("0123456789abcdef"),
      ...headers,
    },
  });
  return { status: res.status, body: await res.json() };
}

describe("websocket", () => {
  test('"ping" is answered with "pong"', async () => {
    const channel = await createChannel(server, "user:admin");
    const inbox = await WsInbox.open(wsUrl(channel.id, "user:watcher"));
    inbox.ws.send("ping");
    expect(await inbox.next()).toBe("pong");
    inbox.close();
  });

  test("every new message is pushed once to every subscriber, in seq order", async () => {
    const channel = await createChannel(server, "user:admin");
    const a = await WsInbox.open(wsUrl(channel.id, "user:watcher"));
    const b = await WsInbox.open(wsUrl(channel.id), { "x-user-id": "user:other-watcher" });
    const sent = await Promise.all(
      Array.from({ length: 20 }, (_, i) => post(channel.id, `user:s${i % 4}`, `n${i}`).then((r) => r.json())),
    );
    for (const inbox of [a, b]) {
      const frames = [];
      const joined = [];
      while (frames.length < 20) {
        const frame = await inbox.nextJson();
        // The four senders' first writes join them to the public channel.
        if (frame.type === "member.joined") joined.push(frame.member.member_id);
        else frames.push(frame);
      }
      expect(joined.sort()).toEqual(["user:s0", "user:s1", "user:s2", "user:s3"]);
      expect(frames.map((f) => f.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      for (const f of frames) {
        expect(f.type).toBe("message.created");
        expect(f.message.seq).toBe(f.seq);
        expect(Object.keys(f.message)).toEqual(
          expect.arrayContaining(["id", "channel_id", "seq", "sender_id", "sender_type", "content_preview", "created_at"]),
        );
      }
      const byId = new Map(sent.map((m) => [m.id, m]));
      for (const f of frames) expect(byId.get(f.message.id)?.seq).toBe(f.seq);
      // Nothing more: no second copy of any message (sync echoes are not re-broadcast).
      inbox.ws.send("ping");
      expect(await inbox.next()).toBe("pong");
    }
    a.close();
    b.close();
  });

  test("frames of one channel do not reach another channel's subscribers", async () => {
    const one = await createChannel(server, "user:admin");
    const two = await createChannel(server, "user:admin");
    const inbox = await WsInbox.open(wsUrl(two.id, "user:watcher"));
    await post(one.id, "user:admin", "for channel one");
    await post(two.id, "user:admin", "for channel two");
    expect((await inbox.nextJson()).message.content_preview).toBe("for channel two");
    inbox.close();
  });

  test("a message from a Matrix user outside DAARION arrives through sync, indexed once and pushed once", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(wsUrl(channel.id, "user:watcher"));
    expect((await post(channel.id, "user:admin", "from the UI")).status).toBe(201);
    const { matrix } = server.app.deps;
    await matrix.join(channel.matrix_room_id, "@bob:example.org");
    await matrix.sendEvent(channel.matrix_room_id, "@bob:example.org", "m.room.message", { msgtype: "m.text", body: "from Element" }, "bob-txn-1");

    const first = await inbox.nextJson();
    expect(first.message.content_preview).toBe("from the UI");
    // Bob joined in Matrix: he is now a member, with his Matrix id behind the matrix: prefix.
    expect(await inbox.nextJson()).toMatchObject({
      type: "member.joined",
      member: { member_id: "matrix:@bob:example.org", member_type: "human", matrix_user_id: "@bob:example.org", role: "member" },
    });
    const second = await inbox.nextJson();
    expect(second).toMatchObject({
      type: "message.created",
      seq: 2,
      message: { sender_id: "matrix:@bob:example.org", sender_type: "human", sender_matrix_id: "@bob:example.org", content_preview: "from Element" },
    });
    const rows = await server.app.deps.sql`select seq, content_preview from messages where channel_id = ${channel.id} order by seq`;
    expect(rows.map((r) => [Number(r.seq), r.content_preview])).toEqual([
      [1, "from the UI"],
      [2, "from Element"],
    ]);
    inbox.close();
  });

  test("the upgrade is refused with a clear reason: no identity 401, unknown or unreadable channel 404", async () => {
    const priv = await createChannel(server, "user:admin", { visibility: "private" });
    expect(await upgradeRefusal(priv.id)).toEqual({ status: 401, body: expect.objectContaining({ error: "UNAUTHENTICATED" }) });
    expect(await upgradeRefusal(priv.id, { "x-user-id": "user:stranger" })).toEqual({
      status: 404,
      body: { error: "NOT_FOUND", message: "channel not found", request_id: expect.any(String) },
    });
    expect((await upgradeRefusal(crypto.randomUUID(), { "x-user-id": "user:admin" })).status).toBe(404);
    expect((await upgradeRefusal("not-a-uuid", { "x-user-id": "user:admin" })).status).toBe(400);

    // A real client sees the refusal as a failed handshake; a member connects fine.
    const refused = new WsInbox(new WebSocket(wsUrl(priv.id, "user:stranger")));
    await expect(refused.opened).rejects.toThrow();
    const member = await WsInbox.open(wsUrl(priv.id, "user:admin"));
    member.close();
  });
});
