import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";
import type { AppError } from "../../src/errors.ts";
import { MatrixGate } from "../helpers/gated-matrix.ts";

// Creating, listing and updating channels.
{
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  describe("channels", () => {
    test("create makes the Matrix room with the seed's alias scheme, and the creator its owner", async () => {
      const res = await server.api("/api/messaging/channels", {
        method: "POST",
        as: "user:admin",
        json: { slug: "test", name: "Test", description: "About testing", microdao_id: "microdao:daarion", visibility: "public" },
      });
      expect(res.status).toBe(201);
      const channel = await res.json();
      expect(channel).toMatchObject({
        slug: "test",
        name: "Test",
        description: "About testing",
        microdao_id: "microdao:daarion",
        visibility: "public",
        is_direct: false,
        is_encrypted: false,
        created_by: "user:admin",
        matrix_alias: "#test-daarion:daarion.city",
      });
      expect(channel.matrix_room_id).toMatch(/^!.+:daarion\.city$/);

      // The room exists in the Matrix backend with the name, topic and public join rule.
      const { sql } = server.app.deps;
      const state = await sql`select type, content from local_matrix_state where room_id = ${channel.matrix_room_id} order by type`;
      const byType = Object.fromEntries(state.map((s) => [s.type, s.content]));
      expect(byType["m.room.name"]).toEqual({ name: "Test" });
      expect(byType["m.room.topic"]).toEqual({ topic: "About testing" });
      expect(byType["m.room.join_rules"]).toEqual({ join_rule: "public" });
      expect(byType["m.room.canonical_alias"]).toEqual({ alias: "#test-daarion:daarion.city" });

      const members = await (await server.api(`/api/messaging/channels/${channel.id}/members`, { as: "user:admin" })).json();
      expect(members).toHaveLength(1);
      expect(members[0]).toMatchObject({ member_id: "user:admin", role: "owner", matrix_user_id: "@user-admin:daarion.city", can_invite: true });
      const [audit] = await sql`select event_type, actor_id from channel_events where channel_id = ${channel.id}`;
      expect(audit).toEqual({ event_type: "channel.created", actor_id: "user:admin" });
    });

    test("a private channel's room is invite-only", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "private" });
      const [rule] = await server.app.deps.sql`
      select content from local_matrix_state where room_id = ${channel.matrix_room_id} and type = 'm.room.join_rules'`;
      expect(rule!.content).toEqual({ join_rule: "invite" });
    });

    test("a duplicate slug within one microDAO is 409 and creates nothing; another microDAO may reuse it", async () => {
      const slug = uniqueSlug("dup");
      await createChannel(server, "user:admin", { slug });
      const before = await server.app.deps.sql`select count(*)::int as n from local_matrix_rooms`;
      const res = await server.api("/api/messaging/channels", {
        method: "POST",
        as: "user:admin",
        json: { slug, name: "Again", microdao_id: "microdao:daarion" },
      });
      expect(res.status).toBe(409);
      expect(await res.json()).toMatchObject({ error: "SLUG_TAKEN" });
      const after = await server.app.deps.sql`select count(*)::int as n from local_matrix_rooms`;
      expect(after[0]!.n).toBe(before[0]!.n);
      const other = await createChannel(server, "user:admin", { slug, microdao_id: "microdao:other" });
      expect(other.slug).toBe(slug);
    });

    test("list shows public channels and the caller's own, filtered by microdao_id", async () => {
      const pub = await createChannel(server, "user:lister", { microdao_id: "microdao:listing", visibility: "public" });
      const priv = await createChannel(server, "user:lister", { microdao_id: "microdao:listing", visibility: "private" });
      const elsewhere = await createChannel(server, "user:lister", { microdao_id: "microdao:elsewhere" });

      const mine = await (await server.api("/api/messaging/channels?microdao_id=microdao:listing", { as: "user:lister" })).json();
      expect(mine.map((c: { id: string }) => c.id).sort()).toEqual([pub.id, priv.id].sort());

      const outsider = await (await server.api("/api/messaging/channels?microdao_id=microdao:listing", { as: "user:stranger" })).json();
      expect(outsider.map((c: { id: string }) => c.id)).toEqual([pub.id]);

      const all = await (await server.api("/api/messaging/channels", { as: "user:lister" })).json();
      expect(all.map((c: { id: string }) => c.id)).toContain(elsewhere.id);
    });

    test("get: public to anyone, private only to members (404 to others, not 403)", async () => {
      const priv = await createChannel(server, "user:admin", { visibility: "private" });
      expect((await server.api(`/api/messaging/channels/${priv.id}`, { as: "user:admin" })).status).toBe(200);
      const res = await server.api(`/api/messaging/channels/${priv.id}`, { as: "user:stranger" });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: "NOT_FOUND", message: "channel not found", request_id: expect.any(String) });
      const unknown = await server.api(`/api/messaging/channels/${crypto.randomUUID()}`, { as: "user:admin" });
      expect(unknown.status).toBe(404);
    });

    test("PATCH changes name, topic and visibility, mirrored into the Matrix room state", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "public" });
      const res = await server.api(`/api/messaging/channels/${channel.id}`, {
        method: "PATCH",
        as: "user:admin",
        json: { name: "Renamed", topic: "New topic", visibility: "microdao" },
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ name: "Renamed", topic: "New topic", visibility: "microdao" });
      const state = await server.app.deps.sql`select type, content from local_matrix_state where room_id = ${channel.matrix_room_id}`;
      const byType = Object.fromEntries(state.map((s) => [s.type, s.content]));
      expect(byType["m.room.name"]).toEqual({ name: "Renamed" });
      expect(byType["m.room.topic"]).toEqual({ topic: "New topic" });
      expect(byType["m.room.join_rules"]).toEqual({ join_rule: "invite" });
      const audit = await server.app.deps.sql`select event_type from channel_events where channel_id = ${channel.id} order by created_at`;
      // PGlite's clock can give both rows the same instant: the set is what is asserted.
      expect(audit.map((a) => a.event_type).sort()).toEqual(["channel.created", "channel.updated"]);
    });

    test("PATCH by a plain member is 403 and changes nothing", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "public" });
      await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:joiner", json: { text: "hi" } });
      const res = await server.api(`/api/messaging/channels/${channel.id}`, { method: "PATCH", as: "user:joiner", json: { name: "Mine" } });
      expect(res.status).toBe(403);
      expect((await (await server.api(`/api/messaging/channels/${channel.id}`, { as: "user:admin" })).json()).name).toBe("Test channel");
    });
  });
}

// Archiving a channel.
{
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
}
