import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import pino from "pino";
import { MatrixError, type MatrixBackend } from "../../src/matrix/port.ts";
import { BEFORE_LOOKBACK } from "../../src/store/messages.ts";

// Sending and listing messages.
{
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  const post = (channelId: string, as: string, json: unknown) =>
    server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json });

  describe("messages", () => {
    test("send puts the message in Matrix and the index, with the next seq", async () => {
      const channel = await createChannel(server, "user:admin");
      const res = await post(channel.id, "user:admin", { text: "hello world" });
      expect(res.status).toBe(201);
      const msg = await res.json();
      expect(msg).toMatchObject({
        channel_id: channel.id,
        seq: 1,
        sender_id: "user:admin",
        sender_type: "human",
        sender_matrix_id: "@user-admin:daarion.city",
        content_preview: "hello world",
        content_type: "text",
        msgtype: "m.text",
        status: "sent",
      });
      expect(msg.matrix_event_id).toMatch(/^\$/);
      const [event] = await server.app.deps.sql`
      select sender, type, content, txn_id from local_matrix_events where event_id = ${msg.matrix_event_id}`;
      expect(event).toEqual({
        sender: "@user-admin:daarion.city",
        type: "m.room.message",
        content: { msgtype: "m.text", body: "hello world" },
        txn_id: msg.id,
      });
      const [row] = await server.app.deps.sql`select delivery_state, outbox_content from messages where id = ${msg.id}`;
      expect(row).toEqual({ delivery_state: "sent", outbox_content: null });
    });

    test("formatted_body and reply_to become HTML content and m.in_reply_to", async () => {
      const channel = await createChannel(server, "user:admin");
      const first = await (await post(channel.id, "user:admin", { text: "question" })).json();
      const res = await post(channel.id, "user:admin", {
        text: "answer",
        msgtype: "m.notice",
        formatted_body: "<b>answer</b>",
        reply_to: first.id,
      });
      expect(res.status).toBe(201);
      const reply = await res.json();
      expect(reply).toMatchObject({ reply_to: first.id, msgtype: "m.notice", seq: 2 });
      const detail = await (await server.api(`/api/messaging/channels/${channel.id}/messages/${reply.id}`, { as: "user:admin" })).json();
      expect(detail.content).toEqual({
        msgtype: "m.notice",
        body: "answer",
        format: "org.matrix.custom.html",
        formatted_body: "<b>answer</b>",
        "m.relates_to": { "m.in_reply_to": { event_id: first.matrix_event_id } },
      });
    });

    test("reply_to naming a message of another channel is 400", async () => {
      const a = await createChannel(server, "user:admin");
      const b = await createChannel(server, "user:admin");
      const inA = await (await post(a.id, "user:admin", { text: "in a" })).json();
      const res = await post(b.id, "user:admin", { text: "x", reply_to: inA.id });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBe("INVALID_REPLY_TO");
    });

    test("GET one message returns the index row plus the full Matrix content", async () => {
      const channel = await createChannel(server, "user:admin");
      const long = "x".repeat(700);
      const msg = await (await post(channel.id, "user:admin", { text: long })).json();
      expect(msg.content_preview).toHaveLength(500);
      const res = await server.api(`/api/messaging/channels/${channel.id}/messages/${msg.id}`, { as: "user:reader" });
      expect(res.status).toBe(200);
      const detail = await res.json();
      expect(detail.id).toBe(msg.id);
      expect(detail.content.body).toBe(long);
      const missing = await server.api(`/api/messaging/channels/${channel.id}/messages/${crypto.randomUUID()}`, { as: "user:reader" });
      expect(missing.status).toBe(404);
    });

    test("text length and msgtype are validated; nothing is written on refusal", async () => {
      const channel = await createChannel(server, "user:admin");
      for (const body of [{ text: "" }, { text: "y".repeat(10001) }, { text: "ok", msgtype: "m.location" }, { text: "ok", extra: 1 }, {}]) {
        const res = await post(channel.id, "user:admin", body);
        expect(res.status).toBe(400);
        const err = await res.json();
        expect(err.error).toBe("VALIDATION_FAILED");
        expect(typeof err.message).toBe("string");
      }
      const [count] = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channel.id}`;
      expect(count!.n).toBe(0);
      const ok = await post(channel.id, "user:admin", { text: "y".repeat(10000) });
      expect(ok.status).toBe(201);
    });

    test("list: newest first, limit 1..200, and a cursor that neither skips nor repeats while messages keep arriving", async () => {
      const channel = await createChannel(server, "user:admin");
      for (let i = 1; i <= 7; i++) expect((await post(channel.id, "user:admin", { text: `m${i}` })).status).toBe(201);

      const seen: string[] = [];
      let cursor: string | null = null;
      let arrivals = 0;
      do {
        const res = await server.api(
          `/api/messaging/channels/${channel.id}/messages?limit=3${cursor ? `&cursor=${cursor}` : ""}`,
          { as: "user:admin" },
        );
        expect(res.status).toBe(200);
        const page = await res.json();
        seen.push(...page.map((m: { content_preview: string }) => m.content_preview));
        cursor = res.headers.get("x-next-cursor");
        // New messages land between page requests.
        await post(channel.id, "user:admin", { text: `late${++arrivals}` });
      } while (cursor);
      expect(seen).toEqual(["m7", "m6", "m5", "m4", "m3", "m2", "m1"]);

      const newest = await (await server.api(`/api/messaging/channels/${channel.id}/messages?limit=1`, { as: "user:admin" })).json();
      expect(newest[0].content_preview).toBe(`late${arrivals}`);
      expect(newest[0].seq).toBe(7 + arrivals);

      for (const bad of ["limit=0", "limit=201", "limit=abc", "cursor=-1", "before=yesterday"]) {
        const res = await server.api(`/api/messaging/channels/${channel.id}/messages?${bad}`, { as: "user:admin" });
        expect(res.status).toBe(400);
      }
    });

    test("the seed's before= timestamp pages too", async () => {
      const channel = await createChannel(server, "user:admin");
      const sent = [];
      for (let i = 1; i <= 3; i++) sent.push(await (await post(channel.id, "user:admin", { text: `t${i}` })).json());
      const res = await server.api(
        `/api/messaging/channels/${channel.id}/messages?before=${encodeURIComponent(sent[2].created_at)}`,
        { as: "user:admin" },
      );
      const page = await res.json();
      expect(page.map((m: { content_preview: string }) => m.content_preview)).toEqual(["t2", "t1"]);
    });

    test("seq is strictly increasing and gap-free under concurrent senders", async () => {
      const channel = await createChannel(server, "user:admin");
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => post(channel.id, `user:sender${i % 5}`, { text: `c${i}` })),
      );
      expect(results.map((r) => r.status)).toEqual(Array(40).fill(201));
      const rows = await server.app.deps.sql`select seq from messages where channel_id = ${channel.id} order by seq`;
      expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      // And Matrix's timeline order matches seq order.
      const timeline = await server.app.deps.sql`
      select m.seq from local_matrix_events e join messages m on m.matrix_event_id = e.event_id
      where e.room_id = ${channel.matrix_room_id} order by e.stream_ordering`;
      expect(timeline.map((r) => Number(r.seq))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    });

    test("public channel: anyone reads; a user's first write joins them; an agent must be invited", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "public" });
      expect((await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:passerby" })).status).toBe(200);
      expect((await post(channel.id, "user:newcomer", { text: "hi all" })).status).toBe(201);
      const members = await (await server.api(`/api/messaging/channels/${channel.id}/members`, { as: "user:admin" })).json();
      expect(members.map((m: { member_id: string }) => m.member_id)).toContain("user:newcomer");
      const [membership] = await server.app.deps.sql`
      select content->>'membership' as membership from local_matrix_state
      where room_id = ${channel.matrix_room_id} and type = 'm.room.member' and state_key = '@user-newcomer:daarion.city'`;
      expect(membership!.membership).toBe("join");
      const agent = await post(channel.id, "agent:rogue", { text: "hello" });
      expect(agent.status).toBe(403);
    });

    test("a refused first write (unknown reply_to or thread_id, unknown message to react to) does not join the sender", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "public" });
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
      const badReply = await post(channel.id, "user:hasty", { text: "re: nothing", reply_to: crypto.randomUUID() });
      expect(badReply.status).toBe(400);
      expect((await badReply.json()).error).toBe("INVALID_REPLY_TO");
      const badThread = await post(channel.id, "user:hasty", { text: "in no thread", thread_id: crypto.randomUUID() });
      expect(badThread.status).toBe(400);
      expect((await badThread.json()).error).toBe("INVALID_THREAD");
      const form = new FormData();
      form.append("file", new Blob(["%PDF-1.4"], { type: "application/pdf" }), "a.pdf");
      form.append("thread_id", crypto.randomUUID());
      const badUpload = await server.api(`/api/messaging/channels/${channel.id}/files`, { method: "POST", as: "user:hasty", body: form });
      expect(badUpload.status).toBe(400);
      expect((await badUpload.json()).error).toBe("INVALID_THREAD");
      const badReaction = await server.api(`/api/messaging/channels/${channel.id}/messages/${crypto.randomUUID()}/reactions`, {
        method: "POST",
        as: "user:hasty",
        json: { emoji: "👍" },
      });
      expect(badReaction.status).toBe(404);

      const { sql } = server.app.deps;
      expect(await sql`select member_id from channel_members where channel_id = ${channel.id} and member_id = 'user:hasty'`).toHaveLength(0);
      expect(await sql`select event_type from channel_events where channel_id = ${channel.id} and (actor_id = 'user:hasty' or target_id = 'user:hasty')`).toHaveLength(0);
      expect(await sql`select 1 from messages where channel_id = ${channel.id}`).toHaveLength(0);
      // The refused upload's file did not go into the media repository either.
      expect(await sql`select 1 from local_matrix_media where uploader = '@user-hasty:daarion.city'`).toHaveLength(0);
      // Not in the room either, as the homeserver sees it.
      expect(await server.app.deps.matrix.getState(channel.matrix_room_id, "m.room.member", "@user-hasty:daarion.city")).toBeNull();
      // No member.joined went out: the next thing on the socket is the answer to our ping.
      inbox.ws.send("ping");
      expect(await inbox.next()).toBe("pong");
      inbox.close();

      // A good first write still joins.
      expect((await post(channel.id, "user:hasty", { text: "now for real" })).status).toBe(201);
      expect(await sql`select member_id from channel_members where channel_id = ${channel.id} and member_id = 'user:hasty'`).toHaveLength(1);
    });

    test("microdao and private channels: non-members get 404 on read and write", async () => {
      for (const visibility of ["microdao", "private"]) {
        const channel = await createChannel(server, "user:admin", { visibility });
        expect((await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:stranger" })).status).toBe(404);
        expect((await post(channel.id, "user:stranger", { text: "let me in" })).status).toBe(404);
        expect((await post(channel.id, "user:admin", { text: "members only" })).status).toBe(201);
      }
    });

    test("a member without can_write is refused with 403", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "private" });
      await server.api(`/api/messaging/channels/${channel.id}/members`, {
        method: "POST",
        as: "user:admin",
        json: { member_id: "user:readonly", can_write: false },
      });
      expect((await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:readonly" })).status).toBe(200);
      const res = await post(channel.id, "user:readonly", { text: "can I?" });
      expect(res.status).toBe(403);
      expect((await res.json()).error).toBe("FORBIDDEN");
    });
  });

  describe("threads", () => {
    test("posting into a thread sends m.thread to Matrix; the listing shows the root with its reply count", async () => {
      const channel = await createChannel(server, "user:admin");
      const root = await (await post(channel.id, "user:admin", { text: "root" })).json();
      const r1 = await (await post(channel.id, "user:alice", { text: "first reply", thread_id: root.id })).json();
      expect(r1).toMatchObject({ thread_id: root.id, seq: 2 });
      // Replying "to a reply" stays in the root's thread, and names that reply.
      const r2res = await post(channel.id, "user:admin", { text: "second reply", thread_id: r1.id, reply_to: r1.id });
      expect(r2res.status).toBe(201);
      const r2 = await r2res.json();
      expect(r2.thread_id).toBe(root.id);

      const events = await server.app.deps.sql`
      select event_id, content from local_matrix_events where event_id in ${server.app.deps.sql([r1.matrix_event_id, r2.matrix_event_id])}`;
      const byId = Object.fromEntries(events.map((e) => [e.event_id, e.content]));
      expect(byId[r1.matrix_event_id]["m.relates_to"]).toEqual({
        rel_type: "m.thread",
        event_id: root.matrix_event_id,
        is_falling_back: true,
        "m.in_reply_to": { event_id: root.matrix_event_id },
      });
      expect(byId[r2.matrix_event_id]["m.relates_to"]).toEqual({
        rel_type: "m.thread",
        event_id: root.matrix_event_id,
        is_falling_back: false,
        "m.in_reply_to": { event_id: r1.matrix_event_id },
      });

      const listing = await (await server.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:admin" })).json();
      expect(listing.map((m: { id: string }) => m.id)).toEqual([root.id]);
      expect(listing[0]).toMatchObject({ reply_count: 2, last_reply_at: r2.created_at });

      const thread = await server.api(`/api/messaging/channels/${channel.id}/messages/${root.id}/thread?limit=1`, { as: "user:admin" });
      expect(thread.status).toBe(200);
      expect((await thread.json()).map((m: { id: string }) => m.id)).toEqual([r2.id]);
      const cursor = thread.headers.get("x-next-cursor");
      const older = await (await server.api(`/api/messaging/channels/${channel.id}/messages/${root.id}/thread?limit=1&cursor=${cursor}`, { as: "user:admin" })).json();
      expect(older.map((m: { id: string }) => m.id)).toEqual([r1.id]);
    });

    test("thread_id naming no message of the channel is 400; the thread of an unknown message is 404", async () => {
      const channel = await createChannel(server, "user:admin");
      const res = await post(channel.id, "user:admin", { text: "x", thread_id: crypto.randomUUID() });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBe("INVALID_THREAD");
      const thread = await server.api(`/api/messaging/channels/${channel.id}/messages/${crypto.randomUUID()}/thread`, { as: "user:admin" });
      expect(thread.status).toBe(404);
    });

    test("a thread reply written in Matrix comes back with thread_id and is broadcast", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "public" });
      const root = await (await post(channel.id, "user:admin", { text: "root" })).json();
      const { matrix } = server.app.deps;
      await matrix.join(channel.matrix_room_id, "@dora:elsewhere.example");
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
      await matrix.sendEvent(channel.matrix_room_id, "@dora:elsewhere.example", "m.room.message", {
        msgtype: "m.text",
        body: "from a Matrix thread",
        "m.relates_to": { rel_type: "m.thread", event_id: root.matrix_event_id, is_falling_back: true, "m.in_reply_to": { event_id: root.matrix_event_id } },
      }, `dora-${crypto.randomUUID()}`);
      let frame = await inbox.nextJson();
      if (frame.type === "member.joined") frame = await inbox.nextJson();
      expect(frame).toMatchObject({ type: "message.created", message: { thread_id: root.id, reply_to: null, content_preview: "from a Matrix thread" } });
      inbox.close();
    });
  });

  /**
   * The local backend with Synapse's rule for reads: an application service may act only as
   * users of its namespace, and a read can be refused outright while `refuseReads` is set.
   */
  function synapseLikeReads(state: { refuseReads: boolean }) {
    return (inner: MatrixBackend): MatrixBackend =>
      new Proxy(inner, {
        get(target, prop, receiver) {
          if (prop === "getEvent") {
            return (roomId: string, eventId: string, asUser?: string) => {
              if (state.refuseReads) return Promise.reject(new MatrixError("M_FORBIDDEN", "User not in room", 403));
              if (asUser && !/^@(user|agent|daarion)-/.test(asUser)) {
                return Promise.reject(new MatrixError("M_FORBIDDEN", "Application service cannot masquerade as this user.", 403));
              }
              return target.getEvent(roomId, eventId);
            };
          }
          const value = Reflect.get(target, prop, receiver);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
  }

  describe("full content of messages from Matrix users outside the namespace", () => {
    const reads = { refuseReads: false };
    const logged: Array<Record<string, unknown>> = [];
    let matrixServer: TestServer;
    beforeAll(async () => {
      const log = pino({ level: "warn" }, { write: (line: string) => void logged.push(JSON.parse(line)) });
      matrixServer = await startTestServer({}, { wrapMatrix: synapseLikeReads(reads), log });
    }, 60000);
    afterAll(() => matrixServer?.stop(), 60000);

    test("GET one message answers 200 with Dora's full content; a refused read is 502, logged without the content", async () => {
      const channel = await createChannel(matrixServer, "user:admin", { visibility: "public" });
      const { matrix } = matrixServer.app.deps;
      const dora = "@dora:elsewhere.example";
      await matrix.join(channel.matrix_room_id, dora);
      const inbox = await WsInbox.open(`${matrixServer.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
      const content = { msgtype: "m.text", body: `secret plans ${"y".repeat(600)}` };
      const { eventId } = await matrix.sendEvent(channel.matrix_room_id, dora, "m.room.message", content, `dora-${crypto.randomUUID()}`);
      let frame = await inbox.nextJson();
      while (frame.type !== "message.created") frame = await inbox.nextJson();
      inbox.close();
      expect(frame.message).toMatchObject({ matrix_event_id: eventId, sender_id: `matrix:${dora}` });
      const url = `/api/messaging/channels/${channel.id}/messages/${frame.message.id}`;

      const res = await matrixServer.api(url, { as: "user:reader" });
      expect(res.status).toBe(200);
      expect((await res.json()).content).toEqual(content);

      reads.refuseReads = true;
      try {
        const refused = await matrixServer.api(url, { as: "user:reader" });
        expect(refused.status).toBe(502);
        expect(await refused.json()).toEqual({ error: "MATRIX_UNAVAILABLE", message: "the Matrix homeserver did not return the message content", request_id: expect.any(String) });
      } finally {
        reads.refuseReads = false;
      }
      const record = logged.find((r) => r.message_id === frame.message.id);
      expect(record).toMatchObject({ level: 40, channel_id: channel.id, errcode: "M_FORBIDDEN", status: 403 });
      expect(JSON.stringify(logged)).not.toContain("secret plans");
    });
  });
}

// Paging with before=.
{
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  /** A message as the index holds it: seq is the order it was indexed in, createdAt the sender's clock. */
  interface Row {
    seq: number;
    createdAt: Date;
    threadOf?: number;
    deleted?: boolean;
    failed?: boolean;
  }

  const T0 = Date.parse("2026-01-01T00:00:00Z");

  /** Indexes rows straight into the table, as Matrix might have delivered them (timestamps out of order). */
  async function seed(channelId: string, rows: Row[]): Promise<Map<number, string>> {
    const ids = new Map<number, string>(rows.map((r) => [r.seq, crypto.randomUUID()]));
    const { sql } = server.app.deps;
    for (const r of rows) {
      await sql`
      insert into messages (id, channel_id, seq, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id,
                            content_preview, delivery_state, created_at, thread_id, deleted_at)
      values (${ids.get(r.seq)!}, ${channelId}, ${r.seq}, ${`$seed-${ids.get(r.seq)}`}, 'm.room.message', 'user:admin', 'human',
              '@user-admin:daarion.city', ${`m${r.seq}`}, ${r.failed ? "failed" : "sent"}, ${r.createdAt},
              ${r.threadOf === undefined ? null : ids.get(r.threadOf)!}, ${r.deleted ? r.createdAt : null})`;
    }
    return ids;
  }

  /** What `before=` has always meant: created before the instant, newest seq first. */
  function expectedPage(rows: Row[], before: Date, limit: number, threadRoot: number | null): string[] {
    return rows
      .filter((r) => !r.deleted && !r.failed && (r.threadOf ?? null) === threadRoot && r.createdAt < before)
      .sort((a, b) => b.seq - a.seq)
      .slice(0, limit)
      .map((r) => `m${r.seq}`);
  }

  async function page(path: string): Promise<{ previews: string[]; cursor: string | null }> {
    const res = await server.api(path, { as: "user:admin" });
    expect(res.status).toBe(200);
    const body: Array<{ content_preview: string }> = await res.json();
    return { previews: body.map((m) => m.content_preview), cursor: res.headers.get("x-next-cursor") };
  }

  const at = (ms: number) => new Date(T0 + ms);

  describe("before= paging", () => {
    test("a before= page holds the newest messages created before the instant, whatever the instant", async () => {
      const channel = await createChannel(server, "user:admin");
      // Timestamps a little out of seq order (senders' clocks), some deleted, failed or thread replies.
      const rows: Row[] = Array.from({ length: 60 }, (_, i) => {
        const seq = i + 1;
        return {
          seq,
          createdAt: at(seq * 1000 + (((seq * 7919) % 7) - 3) * 900),
          deleted: seq % 11 === 0,
          failed: seq % 13 === 0,
          threadOf: seq > 5 && seq % 4 === 0 ? 5 : undefined,
        };
      });
      await seed(channel.id, rows);
      const instants = [...rows.map((r) => r.createdAt), at(0), at(-1000), at(61_000), at(10_000_000), at(30_500)];
      for (const before of instants) {
        for (const limit of [1, 7, 200]) {
          const got = await page(`/api/messaging/channels/${channel.id}/messages?limit=${limit}&before=${before.toISOString()}`);
          const want = expectedPage(rows, before, limit, null);
          expect({ before, limit, got: got.previews }).toEqual({ before, limit, got: want });
          expect(got.cursor).toBe(want.length === limit ? want.at(-1)!.slice(1) : null);
        }
      }
    });

    test("a thread's before= pages are its replies created before the instant, and X-Next-Cursor goes on from there", async () => {
      const channel = await createChannel(server, "user:admin");
      const rows: Row[] = Array.from({ length: 40 }, (_, i) => {
        const seq = i + 1;
        return { seq, createdAt: at(seq * 1000 - (seq % 3) * 900), threadOf: seq > 1 && seq % 2 === 0 ? 1 : undefined, deleted: seq === 20 };
      });
      const ids = await seed(channel.id, rows);
      const thread = `/api/messaging/channels/${channel.id}/messages/${ids.get(1)}/thread`;
      const before = at(30_000);
      const first = await page(`${thread}?limit=4&before=${before.toISOString()}`);
      expect(first.previews).toEqual(expectedPage(rows, before, 4, 1));
      expect(first.previews).toEqual(["m28", "m26", "m24", "m22"]);
      const next = await page(`${thread}?limit=4&cursor=${first.cursor}`);
      expect(next.previews).toEqual(["m18", "m16", "m14", "m12"]);
      expect((await page(`${thread}?before=${at(0).toISOString()}`)).previews).toEqual([]);
    });

    test("a message indexed late with an older timestamp is on the before= page unless BEFORE_LOOKBACK younger ones were indexed first", async () => {
      const channel = await createChannel(server, "user:admin");
      // seq 1..n created at seconds 1..n; then two from clocks that were behind, indexed last.
      const n = BEFORE_LOOKBACK + 20;
      const rows: Row[] = Array.from({ length: n }, (_, i) => ({ seq: i + 1, createdAt: at((i + 1) * 1000) }));
      const lateWithin = { seq: n + 1, createdAt: at((n - BEFORE_LOOKBACK + 1) * 1000 + 500) };
      const lateBeyond = { seq: n + 2, createdAt: at(500) };
      await seed(channel.id, [...rows, lateWithin, lateBeyond]);
      const listing = `/api/messaging/channels/${channel.id}/messages`;

      // Before the end: BEFORE_LOOKBACK - 1 younger messages came before lateWithin, so it leads
      // the page as its seq says; all n came before lateBeyond, so that one is left out rather
      // than the channel being read from the top.
      const end = at(n * 1000 + 1);
      expect((await page(`${listing}?limit=3&before=${end.toISOString()}`)).previews).toEqual([`m${n + 1}`, `m${n}`, `m${n - 1}`]);
      // Early on, only m1 is younger than lateBeyond and older than the instant: it is listed.
      expect((await page(`${listing}?before=${at(2000).toISOString()}`)).previews).toEqual([`m${n + 2}`, "m1"]);
      // And the newest pages list both where they were indexed.
      expect((await page(`${listing}?limit=2`)).previews).toEqual([`m${n + 2}`, `m${n + 1}`]);
    });
  });
}
