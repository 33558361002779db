import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { MatrixGate } from "../helpers/gated-matrix.ts";
import { MatrixError, type MatrixBackend } from "../../src/matrix/port.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { settled } from "../helpers/settled.ts";

setDefaultTimeout(30_000);

// The channel actor: one writer per channel, its mailbox and idle stop.
{
  const gate = new MatrixGate();
  let server: TestServer;
  beforeAll(async () => {
    // The mailbox test needs its six sends to reach the actor together: no limiter query in between.
    server = await startTestServer({ RATE_LIMIT_USER_PER_MIN: "0", RATE_LIMIT_CHANNEL_PER_MIN: "0", ACTOR_MAILBOX_SIZE: "3", ACTOR_IDLE_MS: "300", SEND_CONFIRM_TIMEOUT_MS: "3000" }, { wrapMatrix: gate.wrap });
  }, 60000);
  afterAll(async () => {
    gate.release();
    gate.failWith(null);
    await server?.stop();
  }, 60000);

  const post = (channelId: string, text: string) =>
    server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as: "user:admin", json: { text } });

  const previews = async (channelId: string) =>
    (await server.app.deps.sql`select seq, content_preview, delivery_state from messages where channel_id = ${channelId} order by seq`).map(
      (r) => [Number(r.seq), r.content_preview, r.delivery_state],
    );

  function actorStopped(channelId: string): Promise<void> {
    return new Promise((resolve) => {
      const off = server.app.deps.registry.onActorStopped((id) => {
        if (id === channelId) {
          off();
          resolve();
        }
      });
    });
  }

  describe("channel actor", () => {
    test("a full mailbox answers 503 with Retry-After; queued work still completes", async () => {
      const channel = await createChannel(server, "user:admin");
      await settled(server, channel.id);
      const before = gate.sends;
      gate.hold();
      const inFlight = post(channel.id, "first");
      await gate.arrived(before + 1);
      // The actor is busy with "first" and its mailbox holds 3: of six more sends at least
      // three find it full, and only those can answer while the gate is held.
      const more = Array.from({ length: 6 }, (_, i) => post(channel.id, `more ${i}`));
      const refused = await Promise.race(more);
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(await refused.json()).toMatchObject({ error: "CHANNEL_BUSY" });
      // Release only once all six reached the actor (three queued, three answered), so none
      // arrives after the mailbox drained.
      let answered = 0;
      for (const p of more) void p.then(() => answered++);
      const actor = server.app.deps.registry.get(channel.id);
      const deadline = Date.now() + 10_000;
      while (!(actor.queued === 3 && answered === 3)) {
        if (Date.now() > deadline) throw new Error(`queued ${actor.queued}, answered ${answered}`);
        await new Promise((resolve) => setImmediate(resolve));
      }
      gate.release();
      const statuses = [(await inFlight).status, ...(await Promise.all(more)).map((r) => r.status)];
      // Accepted sends are 201, or 202 if the gate held them past the confirmation wait.
      const accepted = statuses.filter((s) => s === 201 || s === 202).length;
      expect([201, 202]).toContain(statuses[0]!);
      expect(statuses.filter((s) => s === 503).length).toBeGreaterThanOrEqual(3);
      expect(accepted + statuses.filter((s) => s === 503).length).toBe(statuses.length);
      // Whatever was accepted is indexed, gap-free, and reaches Matrix.
      const { sql, registry } = server.app.deps;
      if (registry.has(channel.id)) await actorStopped(channel.id);
      const rows = await previews(channel.id);
      expect(rows.map((r) => r[0])).toEqual(Array.from({ length: accepted }, (_, i) => i + 1));
      expect(rows.every((r) => r[2] === "sent")).toBe(true);
      void sql;
    });

    test("an idle actor passivates, and the next command spawns a fresh one that continues the seq", async () => {
      const channel = await createChannel(server, "user:admin");
      const stoppedOnce = actorStopped(channel.id);
      expect((await post(channel.id, "before idle")).status).toBe(201);
      expect(server.app.deps.registry.has(channel.id)).toBe(true);
      await stoppedOnce;
      expect(server.app.deps.registry.has(channel.id)).toBe(false);
      const res = await post(channel.id, "after idle");
      expect(res.status).toBe(201);
      expect((await res.json()).seq).toBe(2);
    });

    test("while Matrix is unreachable a send is accepted as pending (202), and delivered in order when it returns", async () => {
      const channel = await createChannel(server, "user:admin");
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
      expect((await post(channel.id, "one")).status).toBe(201);
      expect((await inbox.nextJson()).message).toMatchObject({ content_preview: "one", status: "sent" });
      gate.failWith(new MatrixError("M_UNREACHABLE", "homeserver exploded", 502));
      const pending = await post(channel.id, "two");
      expect(pending.status).toBe(202);
      const body = await pending.json();
      expect(body).toMatchObject({ seq: 2, status: "pending", matrix_event_id: null });
      expect(JSON.stringify(body)).not.toContain("exploded");
      // Subscribers see it at once, in its seq place, as pending.
      expect(await inbox.nextJson()).toMatchObject({ type: "message.created", seq: 2, message: { id: body.id, status: "pending" } });
      const third = await post(channel.id, "three");
      expect(third.status).toBe(202);
      expect(await inbox.nextJson()).toMatchObject({ type: "message.created", seq: 3, message: { status: "pending" } });

      gate.failWith(null);
      const confirmed = await inbox.nextJson(15000);
      expect(confirmed).toMatchObject({ type: "message.updated", seq: 2, message: { id: body.id, status: "sent" } });
      expect(confirmed.message.matrix_event_id).toMatch(/^\$/);
      expect(await inbox.nextJson(15000)).toMatchObject({ type: "message.updated", seq: 3, message: { status: "sent" } });
      expect(await previews(channel.id)).toEqual([
        [1, "one", "sent"],
        [2, "two", "sent"],
        [3, "three", "sent"],
      ]);
      // Matrix got them in seq order, each once (the txnId is the message id).
      const timeline = await server.app.deps.sql`
      select e.content->>'body' as body, e.txn_id from local_matrix_events e
      where e.room_id = ${channel.matrix_room_id} and e.type = 'm.room.message' order by e.stream_ordering`;
      expect(timeline.map((r) => r.body)).toEqual(["one", "two", "three"]);
      inbox.close();
    });

    test("a send Matrix refuses for good becomes failed, with its reason: 502 MATRIX_REFUSED and a message.failed frame", async () => {
      const channel = await createChannel(server, "user:admin");
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
      gate.failWith(new MatrixError("M_FORBIDDEN", "You are not allowed to send here", 403));
      const res = await post(channel.id, "refused");
      gate.failWith(null);
      expect(res.status).toBe(502);
      expect((await res.json()).error).toBe("MATRIX_REFUSED");
      const frame = await inbox.nextJson();
      expect(frame).toMatchObject({ type: "message.failed", seq: 1, message: { status: "failed", content_preview: "refused" } });
      const [row] = await server.app.deps.sql`select delivery_state, failure_reason from messages where id = ${frame.message.id}`;
      expect(row!.delivery_state).toBe("failed");
      expect(row!.failure_reason).toContain("M_FORBIDDEN");
      const detail = await server.api(`/api/messaging/channels/${channel.id}/messages/${frame.message.id}`, { as: "user:admin" });
      expect((await detail.json()).status).toBe("failed");
      // The next send takes the next seq: seq stays gap-free, the failed message keeps its place.
      const next = await post(channel.id, "accepted");
      expect(next.status).toBe(201);
      expect((await next.json()).seq).toBe(2);
      inbox.close();
    });

    test("a pending send left by a crash is delivered with its original txnId when the actor starts", async () => {
      const channel = await createChannel(server, "user:admin");
      const { sql, registry } = server.app.deps;
      // What a crash between the durable insert and the Matrix send leaves behind.
      const id = Bun.randomUUIDv7();
      await sql`
      insert into messages (id, channel_id, seq, matrix_type, sender_id, sender_type, sender_matrix_id, content_preview,
                            msgtype, delivery_state, outbox_content)
      values (${id}, ${channel.id}, 1, 'm.room.message', 'user:admin', 'human', '@user-admin:daarion.city', 'survivor',
              'm.text', 'pending', ${sql.json({ msgtype: "m.text", body: "survivor" })})`;
      // The row is read when the channel's actor starts: wait for the current one (spawned by
      // the room's creation events coming back through sync) to passivate.
      if (registry.has(channel.id)) await actorStopped(channel.id);
      const res = await post(channel.id, "after restart");
      expect(res.status).toBe(201);
      expect((await res.json()).seq).toBe(2);
      expect(await previews(channel.id)).toEqual([
        [1, "survivor", "sent"],
        [2, "after restart", "sent"],
      ]);
      const [event] = await sql`select txn_id, content from local_matrix_events e join messages m on m.matrix_event_id = e.event_id where m.id = ${id}`;
      expect(event).toEqual({ txn_id: id, content: { msgtype: "m.text", body: "survivor" } });
    });
  });

  describe("shutdown", () => {
    test("stop() drains every queued send into Matrix before closing the database", async () => {
      const local = new MatrixGate();
      const other = await startTestServer({ ACTOR_MAILBOX_SIZE: "10" }, { wrapMatrix: local.wrap });
      const channel = await createChannel(other, "user:admin");
      local.hold();
      const actor = other.app.deps.registry.get(channel.id);
      const queued = ["a", "b", "c"].map((text) =>
        actor.send({ senderId: "user:admin", text, msgtype: "m.text", formattedBody: null, replyTo: null, joinFirst: false }),
      );
      await local.arrived(1);
      const { sql } = other.app.deps;
      const stopping = other.app.stop();
      local.release();
      await stopping;
      // After shutdown, new work is refused with 503 rather than queued.
      expect(() => other.app.deps.registry.get(channel.id)).toThrow("shutting down");
      const rows = await Promise.all(queued);
      expect(rows.map((r) => [Number(r.seq), r.delivery_state])).toEqual([
        [1, "sent"],
        [2, "sent"],
        [3, "sent"],
      ]);
      expect(local.sends).toBe(3);
      await expect(sql`select 1`).rejects.toThrow();
    });
  });
}

// The outbox retrying with backoff while the homeserver is down.
{
  /** Refuses every message send as unreachable while `down`, noting when each room's attempts came. */
  class DownHomeserver {
    down = false;
    readonly attempts = new Map<string, number[]>();
    private waiters: Array<() => void> = [];

    wrap = (inner: MatrixBackend): MatrixBackend => {
      const note = (roomId: string) => {
        this.attempts.set(roomId, [...(this.attempts.get(roomId) ?? []), performance.now()]);
        for (const wake of this.waiters.splice(0)) wake();
      };
      return new Proxy(inner, {
        get: (target, prop, receiver) => {
          // A homeserver that can be down stands apart from the index: no sends inside its statements.
          if (prop === "sendsInIndex") return undefined;
          if (prop === "sendEvents") {
            return async (roomId: string, events: Parameters<MatrixBackend["sendEvents"]>[1]) => {
              note(roomId);
              if (this.down) return { eventIds: [], error: new MatrixError("M_UNREACHABLE", "homeserver unreachable", 502) };
              return target.sendEvents(roomId, events);
            };
          }
          const value = Reflect.get(target, prop, receiver);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    };

    /** Resolves once every room has been tried `n` times. */
    async triedTimes(rooms: string[], n: number, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!rooms.every((r) => (this.attempts.get(r)?.length ?? 0) >= n)) {
        if (Date.now() > deadline) throw new Error("the outbox did not retry in time");
        await new Promise<void>((resolve) => {
          this.waiters.push(resolve);
          setTimeout(resolve, Math.max(1, deadline - Date.now()));
        });
      }
    }
  }

  const homeserver = new DownHomeserver();
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ SEND_CONFIRM_TIMEOUT_MS: "50" }, { wrapMatrix: homeserver.wrap });
  }, 60000);
  afterAll(async () => {
    homeserver.down = false;
    await server?.stop();
  }, 60000);

  describe("outbox backoff", () => {
    test("channels whose sends failed together retry at different times, none at once", async () => {
      const channels = await Promise.all(Array.from({ length: 8 }, () => createChannel(server, "user:admin")));
      const rooms = channels.map((c) => c.matrix_room_id);
      homeserver.down = true;
      const answers = await Promise.all(
        channels.map((c) => server.api(`/api/messaging/channels/${c.id}/messages`, { method: "POST", as: "user:admin", json: { text: "while down" } })),
      );
      expect(answers.map((r) => r.status)).toEqual(channels.map(() => 202));
      await homeserver.triedTimes(rooms, 2);
      const firstRetryWaits = rooms.map((r) => homeserver.attempts.get(r)![1]! - homeserver.attempts.get(r)![0]!);
      // The first retry waits between half the 500 ms ceiling and the ceiling (plus scheduling):
      // never immediate, and not all the same 500 ms, so a homeserver that comes back is not
      // hit by every channel at the same instant.
      for (const wait of firstRetryWaits) expect(wait).toBeGreaterThanOrEqual(245);
      expect(Math.min(...firstRetryWaits)).toBeLessThan(450);
      expect(Math.max(...firstRetryWaits) - Math.min(...firstRetryWaits)).toBeGreaterThan(30);
    });
  });
}

// Queued sends written as one batch.
{
  /**
   * Sends that queue up behind a busy channel are written as one batch (group commit). What
   * each caller and subscriber sees must be what one-at-a-time sends would have given.
   */
  const gate = new MatrixGate();
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ACTOR_MAILBOX_SIZE: "50", SEND_CONFIRM_TIMEOUT_MS: "10000" }, { wrapMatrix: gate.wrap });
  }, 60000);
  afterAll(async () => {
    gate.release();
    await server?.stop();
  }, 60000);

  const post = (channelId: string, json: Record<string, unknown>, as = "user:admin") =>
    server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json });

  async function until(condition: () => boolean, what: string, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  describe("batched sends", () => {
    test("sends queued behind a busy one: each caller gets its own message, a bad one is refused alone, order is kept everywhere", async () => {
      const channel = await createChannel(server, "user:admin");
      const rootRes = await post(channel.id, { text: "root" });
      expect(rootRes.status).toBe(201);
      const root = await rootRes.json();
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);

      await settled(server, channel.id);
      gate.hold();
      const sendsBefore = gate.sends;
      const first = post(channel.id, { text: "first" });
      await gate.arrived(sendsBefore + 1);
      const actor = server.app.deps.registry.get(channel.id);
      const bodies = [
        { text: "b0" },
        { text: "b1", reply_to: root.id },
        { text: "bad", reply_to: crypto.randomUUID() },
        { text: "b2" },
        { text: "b3", thread_id: root.id },
        { text: "b4" },
      ];
      const queued = bodies.map((body) => post(channel.id, body));
      // All six wait in the mailbox behind "first": they will be taken as one batch.
      await until(() => actor.queued === bodies.length, "six queued sends");
      gate.release();

      const firstRes = await first;
      expect(firstRes.status).toBe(201);
      const answers = await Promise.all(queued.map(async (p) => ({ status: (await p).status, body: await (await p).json() })));
      expect(answers[2]).toEqual({ status: 400, body: expect.objectContaining({ error: "INVALID_REPLY_TO" }) });
      const accepted = answers.filter((_, i) => i !== 2);
      for (const [i, answer] of accepted.entries()) {
        expect(answer.status).toBe(201);
        expect(answer.body).toMatchObject({ content_preview: [0, 1, 3, 4, 5].map((k) => bodies[k]!.text)[i], status: "sent" });
      }
      // Seqs are gap-free after "first" (seq 2); the refused send took none.
      const seqs = accepted.map((a) => a.body.seq as number).sort((a, b) => a - b);
      expect(seqs).toEqual([3, 4, 5, 6, 7]);
      expect(new Set(accepted.map((a) => a.body.id)).size).toBe(5);

      // The index and Matrix hold the same order, each message once.
      const rows = await server.app.deps.sql`
      select seq, content_preview, matrix_event_id, delivery_state, thread_id from messages where channel_id = ${channel.id} order by seq`;
      expect(rows.map((r) => r.delivery_state)).toEqual(Array(7).fill("sent"));
      const timeline = await server.app.deps.matrix.roomMessages(channel.matrix_room_id, { dir: "f", limit: 100 });
      const messages = timeline.events.filter((e) => e.type === "m.room.message");
      expect(messages.map((e) => e.event_id)).toEqual(rows.map((r) => r.matrix_event_id));
      expect(messages.map((e) => e.content.body)).toEqual(rows.map((r) => r.content_preview));
      const byBody = new Map(messages.map((e) => [e.content.body, e]));
      expect(byBody.get("b1")!.content["m.relates_to"]).toEqual({ "m.in_reply_to": { event_id: root.matrix_event_id } });
      expect(byBody.get("b3")!.content["m.relates_to"]).toMatchObject({ rel_type: "m.thread", event_id: root.matrix_event_id });
      expect(rows.find((r) => r.content_preview === "b3")!.thread_id).toBe(root.id);

      // Subscribers get every message once, in seq order.
      const created: number[] = [];
      while (created.length < 6) {
        const frame = await inbox.nextJson();
        if (frame.type === "message.created") created.push(frame.seq);
      }
      expect(created).toEqual([2, 3, 4, 5, 6, 7]);
      inbox.ws.close();
    });
  });
}

// The local backend as it is (no wrapper): a batch goes into the index's own statement, unless
// the homeserver would refuse it, which then takes the pending-first path and its refusal.
{
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ RATE_LIMIT_USER_PER_MIN: "0", RATE_LIMIT_CHANNEL_PER_MIN: "0" });
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  const post = (channelId: string, text: string) =>
    server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as: "user:admin", json: { text } });

  describe("sends inside the index's statement", () => {
    test("a send is in the index as sent and in the room with its id as txnId; one the homeserver would refuse fails alone, writing no event", async () => {
      const { sql } = server.app.deps;
      const channel = await createChannel(server, "user:admin");
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);

      const ok = await post(channel.id, "in one statement");
      expect(ok.status).toBe(201);
      const sent = await ok.json();
      expect(sent).toMatchObject({ seq: 1, status: "sent" });
      expect(await inbox.nextOfType("message.created")).toMatchObject({ seq: 1, message: { id: sent.id, status: "sent", matrix_event_id: sent.matrix_event_id } });
      const [event] = await sql`select event_id, sender, content->>'body' as body from local_matrix_events where txn_id = ${sent.id}`;
      expect(event).toEqual({ event_id: sent.matrix_event_id, sender: "@user-admin:daarion.city", body: "in one statement" });
      const [indexed] = await sql`select delivery_state, matrix_event_id, outbox_content from messages where id = ${sent.id}`;
      expect(indexed).toEqual({ delivery_state: "sent", matrix_event_id: sent.matrix_event_id, outbox_content: null });

      // The homeserver's membership says otherwise than the index (as after a change the service has not seen yet).
      await sql`update local_matrix_state set content = jsonb_set(content, '{membership}', '"leave"')
        where room_id = ${channel.matrix_room_id} and type = 'm.room.member' and state_key = '@user-admin:daarion.city'`;
      const refused = await post(channel.id, "refused by the homeserver");
      await sql`update local_matrix_state set content = jsonb_set(content, '{membership}', '"join"')
        where room_id = ${channel.matrix_room_id} and type = 'm.room.member' and state_key = '@user-admin:daarion.city'`;
      expect(refused.status).toBe(502);
      expect((await refused.json()).error).toBe("MATRIX_REFUSED");
      const failed = await inbox.nextOfType("message.failed");
      expect(failed).toMatchObject({ seq: 2, message: { status: "failed", content_preview: "refused by the homeserver" } });
      const [row] = await sql`select delivery_state, failure_reason from messages where id = ${failed.message.id}`;
      expect(row!.delivery_state).toBe("failed");
      expect(row!.failure_reason).toContain("M_FORBIDDEN");
      expect(await sql`select 1 from local_matrix_events where txn_id = ${failed.message.id}`).toHaveLength(0);

      const next = await post(channel.id, "joined again");
      expect(next.status).toBe(201);
      expect(await next.json()).toMatchObject({ seq: 3, status: "sent" });
      inbox.close();
    });

    test("their echoes never reach the durable inbox; a Matrix user's message after them still does, and nothing is doubled", async () => {
      const { sql, matrix } = server.app.deps;
      const channel = await createChannel(server, "user:admin");
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
      await matrix.join(channel.matrix_room_id, "@bob:example.org");
      await inbox.nextOfType("member.joined");
      const inboxPosition = async () => Number((await sql`select last_value from matrix_inbox_position_seq`)[0]!.last_value);
      const before = await inboxPosition();

      for (let i = 0; i < 10; i++) expect((await post(channel.id, `own ${i}`)).status).toBe(201);
      await matrix.sendEvent(channel.matrix_room_id, "@bob:example.org", "m.room.message", { msgtype: "m.text", body: "from Element" }, `known-echoes-${channel.id}`);
      const previews: string[] = [];
      while (previews.at(-1) !== "from Element") previews.push((await inbox.nextOfType("message.created")).message.content_preview);
      expect(previews).toEqual([...Array.from({ length: 10 }, (_, i) => `own ${i}`), "from Element"]);
      // The poller read all eleven events; only Bob's went through the inbox.
      expect((await inboxPosition()) - before).toBe(1);
      expect(await sql`select 1 from matrix_inbox where room_id = ${channel.matrix_room_id}`).toHaveLength(0);
      const [counts] = await sql`select (select count(*)::int from messages where channel_id = ${channel.id}) as indexed,
        (select count(*)::int from local_matrix_events where room_id = ${channel.matrix_room_id} and type = 'm.room.message') as in_room`;
      expect(counts).toEqual({ indexed: 11, in_room: 11 });
      inbox.close();
    });
  });
}
