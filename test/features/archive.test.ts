import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";
import type { AppError } from "../../src/errors.ts";
import { MatrixGate } from "../helpers/gated-matrix.ts";

let server: TestServer;
const published: PublishedEvent[] = [];
beforeAll(async () => {
  server = await startTestServer();
  server.app.deps.events.subscribe((e) => published.push(e));
}, 60000);
afterAll(() => server?.stop(), 60000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
const mx = (id: string) => `@${id.replace(":", "-")}:daarion.city`;
async function state(roomId: string, type: string) {
  const [row] = await server.app.deps.sql`select content from local_matrix_state where room_id = ${roomId} and type = ${type} and state_key = ''`;
  return row?.content as Record<string, any>;
}

describe("archive", () => {
  test("owners archive: readable still, every write 410, Matrix room invite-only and read-only, frame, NATS, audit", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public", microdao_id: "microdao:arch" });
    await api(`/${channel.id}/members`, { method: "POST", as: "user:owner", json: { member_id: "user:bob" } });
    await api(`/${channel.id}/members`, { method: "POST", as: "user:owner", json: { member_id: "agent:sofia", role: "agent" } });
    const msg = await (await api(`/${channel.id}/messages`, { method: "POST", as: "user:bob", json: { text: "before" } })).json();
    expect((await api(`/${channel.id}`, { method: "DELETE", as: "user:bob" })).status).toBe(403);

    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:bob`);
    const res = await api(`/${channel.id}`, { method: "DELETE", as: "user:owner" });
    expect(res.status).toBe(200);
    const archived = await res.json();
    expect(archived.archived_at).toEqual(expect.any(String));
    expect(await inbox.nextJson()).toMatchObject({ type: "channel.archived", channel: { id: channel.id, archived_at: archived.archived_at } });
    inbox.close();
    expect(await state(channel.matrix_room_id, "m.room.join_rules")).toEqual({ join_rule: "invite" });
    expect(await state(channel.matrix_room_id, "m.room.power_levels")).toMatchObject({ events_default: 100, users: { [mx("user:owner")]: 100 } });
    const [audit] = await server.app.deps.sql`select actor_id from channel_events where channel_id = ${channel.id} and event_type = 'channel.archived'`;
    expect(audit).toEqual({ actor_id: "user:owner" });
    expect(published.find((e) => e.subject === "messaging.channel.archived")?.payload).toMatchObject({
      channel_id: channel.id,
      microdao_id: "microdao:arch",
      archived_by: "user:owner",
    });

    // Reads still work.
    expect((await (await api(`/${channel.id}`, { as: "user:bob" })).json()).archived_at).toBe(archived.archived_at);
    expect((await (await api(`/${channel.id}/messages`, { as: "user:bob" })).json()).map((m: { id: string }) => m.id)).toEqual([msg.id]);
    expect((await api(`/${channel.id}/members`, { as: "user:bob" })).status).toBe(200);
    expect((await api(`/${channel.id}/events`, { as: "user:bob" })).status).toBe(200);
    expect((await api(`/${channel.id}/pins`, { as: "user:bob" })).status).toBe(200);

    // Every write is 410 CHANNEL_ARCHIVED.
    const writes: Array<[string, string, string, unknown]> = [
      ["POST", `/${channel.id}/messages`, "user:bob", { text: "after" }],
      ["POST", `/${channel.id}/messages`, "user:newcomer", { text: "after" }],
      ["POST", `/${channel.id}/members`, "user:owner", { member_id: "user:carol" }],
      ["PATCH", `/${channel.id}`, "user:owner", { name: "New name" }],
      ["PATCH", `/${channel.id}/members/user:bob`, "user:owner", { role: "admin" }],
      ["DELETE", `/${channel.id}/members/user:bob`, "user:owner", undefined],
      ["DELETE", `/${channel.id}/members/user:bob`, "user:bob", undefined],
      ["POST", `/${channel.id}/pins`, "user:owner", { message_id: msg.id }],
      ["DELETE", `/${channel.id}`, "user:owner", undefined],
    ];
    for (const [method, path, as, json] of writes) {
      const r = await api(path, { method, as, json });
      expect([method, path, as, r.status]).toEqual([method, path, as, 410]);
      expect(await r.json()).toMatchObject({ error: "CHANNEL_ARCHIVED" });
    }
    const agent = await server.api("/internal/agents/agent:sofia/post-to-channel", { method: "POST", json: { channel_id: channel.id, text: "x" } });
    expect(agent.status).toBe(410);
    const [count] = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channel.id}`;
    expect(count!.n).toBe(1);

    // The listing hides archived channels unless asked.
    const list = async (q: string) => ((await (await api(`?microdao_id=microdao:arch${q}`, { as: "user:owner" })).json()) as Array<{ id: string }>).map((c) => c.id);
    expect(await list("")).toEqual([]);
    expect(await list("&include_archived=true")).toEqual([channel.id]);
  });

  test("admins may archive; PATCH of a channel is published as messaging.channel.updated", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "private" });
    await api(`/${channel.id}/members`, { method: "POST", as: "user:owner", json: { member_id: "user:adm", role: "admin" } });
    expect((await api(`/${channel.id}`, { method: "PATCH", as: "user:adm", json: { name: "Renamed" } })).status).toBe(200);
    expect(published.find((e) => e.subject === "messaging.channel.updated" && (e.payload as { channel_id: string }).channel_id === channel.id)?.payload).toMatchObject({
      updated_by: "user:adm",
      fields: ["name"],
      via: "api",
    });
    expect((await api(`/${channel.id}`, { method: "DELETE", as: "user:stranger" })).status).toBe(404);
    expect((await api(`/${crypto.randomUUID()}`, { method: "DELETE", as: "user:owner" })).status).toBe(404);
    expect((await api(`/${channel.id}`, { method: "DELETE", as: "user:adm" })).status).toBe(200);
  });
});

describe("archive racing queued writes", () => {
  test("a send queued behind the archive (its access checked before) is refused with 410", async () => {
    const gate = new MatrixGate();
    const gated = await startTestServer({}, { wrapMatrix: gate.wrap });
    try {
      const channel = await createChannel(gated, "user:owner", { visibility: "public" });
      gate.hold();
      const first = gated.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:owner", json: { text: "first" } });
      await gate.arrived(1);
      // Enqueued in this order while the actor is busy with the held send.
      const actor = gated.app.deps.registry.get(channel.id);
      const archived = actor.run("archive.archive", { callerId: "user:owner" });
      const late = actor.send({ senderId: "user:owner", text: "late", msgtype: "m.text", formattedBody: null, replyTo: null, joinFirst: false });
      const lateError = late.then(() => null, (err: AppError) => [err.status, err.code]);
      gate.release();
      expect((await first).status).toBe(201);
      expect((await archived).archived_at).toBeInstanceOf(Date);
      expect(await lateError).toEqual([410, "CHANNEL_ARCHIVED"]);
      const [count] = await gated.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channel.id}`;
      expect(count!.n).toBe(1);
    } finally {
      await gated.stop();
    }
  });
});
