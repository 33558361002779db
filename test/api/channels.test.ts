import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";

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
