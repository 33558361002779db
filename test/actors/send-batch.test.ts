import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { MatrixGate } from "../helpers/gated-matrix.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { settled } from "../helpers/settled.ts";

setDefaultTimeout(30_000);

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
