import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import net from "node:net";

// The WebSocket stream.
{
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
}

// Resuming a WebSocket stream.
{
  let server: TestServer;
  beforeAll(async () => {
    // A small limit so a stalled reader is cut off after a modest flood.
    // The slow-consumer case floods the channel: no rate limits here.
    server = await startTestServer({
      WS_BACKPRESSURE_LIMIT_BYTES: "16384",
      RATE_LIMIT_USER_PER_MIN: "0",
      RATE_LIMIT_CHANNEL_PER_MIN: "0",
      RATE_LIMIT_READ_PER_MIN: "0",
    });
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  const post = async (channelId: string, as: string, text: string, extra: Record<string, unknown> = {}) => {
    const res = await server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json: { text, ...extra } });
    if (res.status !== 201) throw new Error(`post: ${res.status} ${await res.text()}`);
    return res.json() as Promise<{ id: string; seq: number }>;
  };
  const wsUrl = (channelId: string, query = "") => `${server.wsUrl}/ws/messaging/${channelId}?user_id=user:reader${query}`;
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  /** Message seqs received until the frame that `stop` accepts; other frames are kept aside. */
  async function collect(inbox: WsInbox, stop: (frame: any) => boolean) {
    const seqs: number[] = [];
    const others: any[] = [];
    for (;;) {
      const frame = await inbox.nextJson(10000);
      if (frame.type === "message.created") seqs.push(frame.seq);
      else others.push(frame);
      if (stop(frame)) return { seqs, others };
    }
  }

  async function upgradeRefusal(channelId: string, query: string) {
    const res = await fetch(`${server.url}/ws/messaging/${channelId}?user_id=user:reader${query}`, {
      headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": btoa("0123456789abcdef") },
    });
    return { status: res.status, body: (await res.json()) as any };
  }

  describe("websocket resume", () => {
    test("?since_seq=N replays every message after N (thread replies too), marks where live starts, then goes live", async () => {
      const channel = await createChannel(server, "user:admin");
      const root = await post(channel.id, "user:admin", "m1");
      await post(channel.id, "user:admin", "m2");
      await post(channel.id, "user:admin", "m3", { thread_id: root.id });
      await post(channel.id, "user:admin", "m4");
      const inbox = await WsInbox.open(wsUrl(channel.id, "&since_seq=2"));
      const replay = await collect(inbox, (f) => f.type === "resumed");
      expect(replay.seqs).toEqual([3, 4]);
      expect(replay.others).toEqual([{ type: "resumed", seq: 4, since_seq: 2, replayed: 2 }]);
      const live = await post(channel.id, "user:admin", "m5");
      const frame = await inbox.nextJson();
      expect(frame).toMatchObject({ type: "message.created", seq: 5, message: { id: live.id, seq: 5, content_preview: "m5" } });
      inbox.ws.send("ping");
      expect(await inbox.next()).toBe("pong");
      inbox.close();
    });

    test('{"type":"resume"} on a live socket replays from since_seq without duplicating what follows', async () => {
      const channel = await createChannel(server, "user:admin");
      const inbox = await WsInbox.open(wsUrl(channel.id));
      for (const text of ["a", "b", "c"]) await post(channel.id, "user:admin", text);
      expect((await collect(inbox, (f) => f.seq === 3)).seqs).toEqual([1, 2, 3]);
      inbox.ws.send(JSON.stringify({ type: "resume", since_seq: 1 }));
      const replay = await collect(inbox, (f) => f.type === "resumed");
      expect(replay.seqs).toEqual([2, 3]);
      expect(replay.others.at(-1)).toEqual({ type: "resumed", seq: 3, since_seq: 1, replayed: 2 });
      await post(channel.id, "user:admin", "d");
      expect(await inbox.nextJson()).toMatchObject({ type: "message.created", seq: 4 });
      inbox.ws.send("ping");
      expect(await inbox.next()).toBe("pong");
      inbox.close();
    });

    test("resuming while another client keeps posting yields exactly N+1..M, each once, in order", async () => {
      const channel = await createChannel(server, "user:admin");
      for (let i = 0; i < 10; i++) await post(channel.id, "user:poster", `before ${i}`);
      const total = 70;
      const posting = (async () => {
        for (let i = 10; i < total; i++) await post(channel.id, "user:poster", `during ${i}`);
      })();
      // One fresh connection and one live socket that resumes, both during the posting.
      const fresh = await WsInbox.open(wsUrl(channel.id, "&since_seq=5"));
      const live = await WsInbox.open(wsUrl(channel.id));
      const firstLive = await live.nextJson(10000);
      let seenFour = false;
      const watchFour = (f: any) => f.type === "message.created" && f.seq === 4 && (seenFour = true);
      live.ws.send(JSON.stringify({ type: "resume", since_seq: 3 }));
      await posting;
      const a = await collect(fresh, (f) => f.seq === total && f.type === "message.created");
      expect(a.seqs).toEqual(range(6, total));
      expect(a.others.filter((f) => f.type === "resumed")).toHaveLength(1);
      // The live socket: a run of live frames, then (from the resume on) 4..total, each once.
      const b = await collect(live, (f) => (watchFour(f), f.seq === total && f.type === "message.created" && seenFour));
      const replayFrom = b.seqs.indexOf(4);
      expect(firstLive.type).toBe("message.created");
      expect(b.seqs.slice(0, replayFrom)).toEqual(range(firstLive.seq + 1, firstLive.seq + replayFrom));
      expect(b.seqs.slice(replayFrom)).toEqual(range(4, total));
      expect(b.others.filter((f) => f.type === "resumed")).toHaveLength(1);
      for (const inbox of [fresh, live]) {
        inbox.ws.send("ping");
        expect(await inbox.next()).toBe("pong");
        inbox.close();
      }
    });

    test("frames that are not messages carry the channel's latest seq", async () => {
      const channel = await createChannel(server, "user:admin");
      await post(channel.id, "user:admin", "one");
      await post(channel.id, "user:admin", "two");
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);
      const invited = await server.api(`/api/messaging/channels/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "user:newcomer" } });
      expect(invited.status).toBe(201);
      expect(await inbox.nextJson()).toMatchObject({ type: "member.joined", seq: 2, member: { member_id: "user:newcomer" } });
      await post(channel.id, "user:admin", "three");
      expect(await inbox.nextJson()).toMatchObject({ type: "message.created", seq: 3 });
      const patched = await server.api(`/api/messaging/channels/${channel.id}`, { method: "PATCH", as: "user:admin", json: { topic: "news" } });
      expect(patched.status).toBe(200);
      expect(await inbox.nextJson()).toMatchObject({ type: "channel.updated", seq: 3, channel: { topic: "news" } });
      inbox.ws.send(JSON.stringify({ type: "typing", typing: true }));
      expect(await inbox.nextJson()).toMatchObject({ type: "typing", seq: 3, user_ids: ["user:admin"] });
      inbox.close();
    });

    test("a bad since_seq is refused: 400 at the upgrade, an error frame for a resume frame", async () => {
      const channel = await createChannel(server, "user:admin");
      await post(channel.id, "user:admin", "only");
      for (const query of ["&since_seq=abc", "&since_seq=-1", "&since_seq=1.5", "&since_seq=2"]) {
        const refusal = await upgradeRefusal(channel.id, query);
        expect(refusal.status).toBe(400);
        expect(refusal.body.error).toBe("INVALID_SINCE_SEQ");
      }
      const inbox = await WsInbox.open(wsUrl(channel.id));
      inbox.ws.send(JSON.stringify({ type: "resume", since_seq: 7 }));
      expect(await inbox.nextJson()).toMatchObject({ type: "error", error: "INVALID_SINCE_SEQ" });
      inbox.ws.send(JSON.stringify({ type: "resume", since_seq: -1 }));
      expect(await inbox.nextJson()).toMatchObject({ type: "error", error: "UNKNOWN_FRAME" });
      // The socket stays subscribed: the next message still arrives, once.
      await post(channel.id, "user:admin", "after");
      expect(await inbox.nextJson()).toMatchObject({ type: "message.created", seq: 2 });
      inbox.close();
    });

    test("more than 10,000 messages to replay: resync_required and close code 4410", async () => {
      const channel = await createChannel(server, "user:admin");
      const first = await post(channel.id, "user:admin", "seed");
      // Bulk rows straight into the index: 10,001 messages through the API would take minutes.
      await server.app.deps.sql`
      insert into messages (id, channel_id, seq, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id,
                            content_preview, content_type, msgtype, delivery_state, created_at)
      select gen_random_uuid(), channel_id, seq + g, '$bulk' || g || ':' || ${channel.id}, matrix_type, sender_id, sender_type,
             sender_matrix_id, 'bulk', content_type, msgtype, 'sent', now()
      from messages, generate_series(1, 10001) g where id = ${first.id}`;
      const inbox = await WsInbox.open(wsUrl(channel.id, "&since_seq=0"));
      expect(await inbox.nextJson()).toEqual({ type: "resync_required", seq: expect.any(Number), since_seq: 0, max_replay: 10000 });
      expect((await inbox.closed).code).toBe(4410);
      // Within the cap it replays.
      const near = await WsInbox.open(wsUrl(channel.id, "&since_seq=9000"));
      const replay = await collect(near, (f) => f.type === "resumed");
      expect(replay.seqs).toEqual(range(9001, 10002));
      near.close();
    });

    test("a subscriber that stops reading is closed with 4008 after what was queued, and resumes without gap or duplicate", async () => {
      const channel = await createChannel(server, "user:admin");
      await post(channel.id, "user:admin", "before the stall");
      const stalled = await StalledSocket.open(server.app.port, `/ws/messaging/${channel.id}?user_id=user:slow`);
      // Flood: large channel.updated frames, with messages in between.
      const big = (i: number) => `${i}`.padEnd(2000, "x");
      let messages = 1;
      // About 4 MB: more than the kernel buffers of a loopback connection take (they held ~2 MB here).
      for (let round = 0; round < 120; round++) {
        const batch: Promise<unknown>[] = [];
        for (let i = 0; i < 8; i++) {
          batch.push(server.api(`/api/messaging/channels/${channel.id}`, { method: "PATCH", as: "user:admin", json: { topic: big(round * 8 + i), description: big(i) } }));
        }
        await Promise.all(batch);
        await post(channel.id, "user:admin", `during ${round}`);
        messages++;
      }
      // Reading again, the client gets what was queued, with no frame skipped, then the close.
      expect(await stalled.closeCode()).toBe(4008);
      const got = stalled.seqs;
      expect(got.length).toBeGreaterThan(0);
      expect(got.length).toBeLessThan(messages - 1);
      expect(got).toEqual(range(2, got.at(-1)!));
      await post(channel.id, "user:admin", "after the cut");
      messages++;
      const again = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:slow&since_seq=${got.at(-1)}`);
      const replay = await collect(again, (f) => f.type === "resumed");
      expect(replay.seqs).toEqual(range(got.at(-1)! + 1, messages));
      await post(channel.id, "user:admin", "live again");
      // Matrix echoes of the flood's topic changes may still come as channel.updated frames.
      expect((await collect(again, (f) => f.type === "message.created")).seqs).toEqual([messages + 1]);
      again.close();
    }, 60000);
  });

  /**
   * A WebSocket client that completes the handshake and then stops reading, like a stuck
   * consumer: the kernel buffers fill and the server's send buffer grows.
   */
  class StalledSocket {
    closedByServer = false;
    readonly seqs: number[] = [];
    private readonly closed: Promise<void>;
    private constructor(private readonly socket: net.Socket) {
      this.closed = new Promise((resolve) => socket.on("close", () => {
        this.closedByServer = true;
        resolve();
      }));
      socket.on("end", () => (this.closedByServer = true));
    }

    static async open(port: number, path: string): Promise<StalledSocket> {
      const socket = net.connect(port, "127.0.0.1");
      await new Promise<void>((resolve, reject) => {
        socket.once("data", (head) => {
          socket.pause();
          if (!String(head).startsWith("HTTP/1.1 101")) reject(new Error(`upgrade refused: ${String(head).split("\r\n")[0]}`));
          else resolve();
        });
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
            `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${btoa("0123456789abcdef")}\r\n\r\n`,
        );
      });
      return new StalledSocket(socket);
    }

    /** Reads what the server sent before cutting off; the close frame's code, or 1006 (RFC 6455) without one. */
    async closeCode(): Promise<number> {
      const chunks: Buffer[] = [];
      this.socket.on("data", (c: Buffer) => chunks.push(c));
      this.socket.resume();
      await this.closed;
      const data = Buffer.concat(chunks);
      let code = 1006;
      for (let at = 0; at + 2 <= data.length; ) {
        const opcode = data[at]! & 0x0f;
        let length = data[at + 1]! & 0x7f;
        let header = 2;
        if (length === 126) (length = data.readUInt16BE(at + 2)), (header = 4);
        else if (length === 127) (length = Number(data.readBigUInt64BE(at + 2))), (header = 10);
        if (opcode === 1) {
          const frame = JSON.parse(data.subarray(at + header, at + header + length).toString());
          if (frame.type === "message.created") this.seqs.push(frame.seq);
        }
        if (opcode === 8 && length >= 2 && at + header + 2 <= data.length) code = data.readUInt16BE(at + header);
        at += header + length;
      }
      return code;
    }
  }
}
