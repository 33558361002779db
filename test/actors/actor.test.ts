import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";

setDefaultTimeout(30_000);
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { MatrixGate } from "../helpers/gated-matrix.ts";
import { MatrixError } from "../../src/matrix/port.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { settled } from "../helpers/settled.ts";

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
