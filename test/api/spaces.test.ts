import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";
import { reconcileSpaces, spaceReportLines } from "../../src/features/spaces/reconcile.ts";

// A microDAO is a Matrix space, on the embedded default (the local Matrix backend).

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
}, 60000);
afterAll(() => server?.stop(), 60000);

const SPACE_USER = "@daarion-space:daarion.city";
let counter = 0;
const newMicrodao = () => `microdao:sp${Date.now().toString(36)}${(counter++).toString(36)}`;
const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging${path}`, init);
const spaceOf = async (microdao: string, as = "user:owner") => {
  const res = await api(`/microdaos/${microdao}/space`, { as });
  expect(res.status).toBe(200);
  return res.json();
};
/** The first event on the bus that matches, or a rejection after the timeout. */
const nextPublished = (pred: (e: PublishedEvent) => boolean, timeoutMs = 10000) =>
  new Promise<PublishedEvent>((resolve, reject) => {
    const timer = setTimeout(() => (off(), reject(new Error("no matching event was published"))), timeoutMs);
    const off = server.app.deps.events.subscribe((e) => {
      if (!pred(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
const state = (room: string, type: string, key: string) => server.app.deps.matrix.getState(room, type, key);
const children = async (room: string) =>
  Object.fromEntries(
    (await server.app.deps.matrix.getStateEvents(room, "m.space.child")).filter((e) => Array.isArray(e.content.via)).map((e) => [e.stateKey, e.content]),
  );
const senderOf = async (room: string, type: string, key: string) => {
  const [row] = await server.app.deps.sql`
    select e.sender from local_matrix_state s join local_matrix_events e using (event_id)
    where s.room_id = ${room} and s.type = ${type} and s.state_key = ${key}`;
  return row?.sender as string | undefined;
};

describe("spaces (local backend)", () => {
  test("the first channel makes the space; each channel is its child, with via and order, and names it as parent", async () => {
    const microdao = newMicrodao();
    expect((await api(`/microdaos/${microdao}/space`, { as: "user:owner" })).status).toBe(404);
    const a = await createChannel(server, "user:owner", { microdao_id: microdao, visibility: "public" });
    const b = await createChannel(server, "user:owner", { microdao_id: microdao, visibility: "microdao" });
    const space = await spaceOf(microdao);
    expect(space).toMatchObject({ microdao_id: microdao, name: microdao.slice(9), groups: [], foreign_children: [] });
    expect(space.matrix_alias).toBe(`#space_${microdao.slice(9)}:daarion.city`);
    expect(space.channels.map((c: { id: string }) => c.id)).toEqual([a.id, b.id]);
    expect(space.channels.every((c: { advertised: boolean }) => c.advertised)).toBe(true);

    const room = space.matrix_room_id;
    expect(await state(room, "m.room.create", "")).toMatchObject({ type: "m.space", creator: SPACE_USER });
    expect(await state(room, "m.room.name", "")).toEqual({ name: microdao.slice(9) });
    const kids = await children(room);
    expect(Object.keys(kids).sort()).toEqual([a.matrix_room_id, b.matrix_room_id].sort());
    expect(kids[a.matrix_room_id]).toEqual({ via: ["daarion.city"], order: space.channels[0].order });
    expect(space.channels[0].order < space.channels[1].order).toBe(true);
    expect(await senderOf(room, "m.space.child", a.matrix_room_id)).toBe(SPACE_USER);
    expect(await state(a.matrix_room_id, "m.space.parent", room)).toEqual({ via: ["daarion.city"], canonical: true });
    // Restricted to the members of the channels it advertises.
    expect(await state(room, "m.room.join_rules", "")).toEqual({
      join_rule: "restricted",
      allow: [a.matrix_room_id, b.matrix_room_id].map((room_id) => ({ type: "m.room_membership", room_id })),
    });
    // The space's room is not a channel.
    const listed = await (await api(`/channels?microdao_id=${microdao}`, { as: "user:owner" })).json();
    expect(listed.map((c: { id: string }) => c.id).sort()).toEqual([a.id, b.id].sort());
  });

  test("two first channels created at once make one space", async () => {
    const microdao = newMicrodao();
    const [a, b] = await Promise.all([
      createChannel(server, "user:owner", { microdao_id: microdao }),
      createChannel(server, "user:other", { microdao_id: microdao }),
    ]);
    const rooms = await server.app.deps.sql`
      select r.room_id from local_matrix_rooms r join local_matrix_aliases a using (room_id)
      where r.creator = ${SPACE_USER} and a.alias = ${`#space_${microdao.slice(9)}:daarion.city`}`;
    expect(rooms.length).toBe(1);
    const made = await server.app.deps.sql`
      select count(*)::int as n from local_matrix_events where sender = ${SPACE_USER} and type = 'm.room.create'
        and content->>'type' = 'm.space' and room_id in (select room_id from local_matrix_state where type = 'm.room.name' and content->>'name' = ${microdao.slice(9)})`;
    expect(made[0]!.n).toBe(1);
    const room = rooms[0]!.room_id as string;
    expect(Object.keys(await children(room)).sort()).toEqual([a.matrix_room_id, b.matrix_room_id].sort());
    expect(await state(a.matrix_room_id, "m.space.parent", room)).toMatchObject({ canonical: true });
    expect(await state(b.matrix_room_id, "m.space.parent", room)).toMatchObject({ canonical: true });
  });

  test("private channels are not advertised; visibility changes and archiving update m.space.child and m.space.parent", async () => {
    const microdao = newMicrodao();
    const open = await createChannel(server, "user:owner", { microdao_id: microdao, visibility: "public" });
    const secret = await createChannel(server, "user:owner", { microdao_id: microdao, visibility: "private" });
    const space = await spaceOf(microdao);
    const room = space.matrix_room_id;
    expect(Object.keys(await children(room))).toEqual([open.matrix_room_id]);
    expect(await state(secret.matrix_room_id, "m.space.parent", room)).toBeNull();
    expect(space.channels.find((c: { id: string }) => c.id === secret.id)).toMatchObject({ advertised: false, visibility: "private" });
    // Someone outside sees the public channel only.
    expect((await spaceOf(microdao, "user:stranger")).channels.map((c: { id: string }) => c.id)).toEqual([open.id]);

    expect((await api(`/channels/${secret.id}`, { method: "PATCH", as: "user:owner", json: { visibility: "public" } })).status).toBe(200);
    expect(Object.keys(await children(room)).sort()).toEqual([open.matrix_room_id, secret.matrix_room_id].sort());
    expect(await state(secret.matrix_room_id, "m.space.parent", room)).toMatchObject({ via: ["daarion.city"] });

    expect((await api(`/channels/${open.id}`, { method: "PATCH", as: "user:owner", json: { visibility: "private" } })).status).toBe(200);
    expect(await state(room, "m.space.child", open.matrix_room_id)).toEqual({});
    expect(await state(open.matrix_room_id, "m.space.parent", room)).toEqual({});

    expect((await api(`/channels/${secret.id}`, { method: "DELETE", as: "user:owner" })).status).toBe(200);
    expect(await state(room, "m.space.child", secret.matrix_room_id)).toEqual({});
    expect(await state(secret.matrix_room_id, "m.space.parent", room)).toEqual({});
    expect((await spaceOf(microdao)).channels.map((c: { id: string }) => c.id)).toEqual([open.id]);
  });

  test("groups: created, renamed and reordered by owners and admins; channels move into them", async () => {
    const microdao = newMicrodao();
    const a = await createChannel(server, "user:owner", { microdao_id: microdao });
    const b = await createChannel(server, "user:owner", { microdao_id: microdao });
    const space = await spaceOf(microdao);
    const room = space.matrix_room_id;

    expect((await api(`/microdaos/${microdao}/groups`, { method: "POST", as: "user:stranger", json: { name: "Nope" } })).status).toBe(403);
    expect((await api(`/microdaos/microdao:nothing-here/groups`, { method: "POST", as: "user:owner", json: { name: "Nope" } })).status).toBe(404);
    const res = await api(`/microdaos/${microdao}/groups`, { method: "POST", as: "user:owner", json: { name: "Work", order: "m" } });
    expect(res.status).toBe(201);
    const work = await res.json();
    expect(work).toMatchObject({ name: "Work", order: "m", microdao_id: microdao, created_by: "user:owner", channels: [] });
    const gRoom = work.matrix_room_id as string;
    expect(await state(gRoom, "m.room.create", "")).toMatchObject({ type: "m.space" });
    expect(await state(room, "m.space.child", gRoom)).toEqual({ via: ["daarion.city"], order: "m" });
    expect(await state(gRoom, "m.space.parent", room)).toEqual({ via: ["daarion.city"], canonical: true });
    const play = await (await api(`/microdaos/${microdao}/groups`, { method: "POST", as: "user:owner", json: { name: "Play", order: "z" } })).json();

    // Move b into Work, with an order of its own.
    const moved = await api(`/microdaos/${microdao}/space/channels/${b.id}`, { method: "PATCH", as: "user:owner", json: { group_id: work.id, order: "0" } });
    expect(moved.status).toBe(200);
    expect(await moved.json()).toMatchObject({ id: b.id, group_id: work.id, order: "0", advertised: true });
    expect(await state(gRoom, "m.space.child", b.matrix_room_id)).toEqual({ via: ["daarion.city"], order: "0" });
    expect(await state(room, "m.space.child", b.matrix_room_id)).toEqual({});
    expect(await state(b.matrix_room_id, "m.space.parent", gRoom)).toMatchObject({ canonical: true });
    expect(await state(b.matrix_room_id, "m.space.parent", room)).toEqual({});

    // Rename and reorder: Play before Work.
    const renamed = await api(`/microdaos/${microdao}/groups/${play.id}`, { method: "PATCH", as: "user:owner", json: { name: "Fun", order: "b" } });
    expect(renamed.status).toBe(200);
    expect(await renamed.json()).toMatchObject({ name: "Fun", order: "b" });
    expect(await state(play.matrix_room_id, "m.room.name", "")).toEqual({ name: "Fun" });
    expect(await state(room, "m.space.child", play.matrix_room_id)).toEqual({ via: ["daarion.city"], order: "b" });
    const view = await spaceOf(microdao);
    expect(view.groups.map((g: { name: string }) => g.name)).toEqual(["Fun", "Work"]);
    expect(view.groups[1].channels.map((c: { id: string }) => c.id)).toEqual([b.id]);
    expect(view.channels.map((c: { id: string }) => c.id)).toEqual([a.id]);
    expect((await api(`/microdaos/${microdao}/groups/${play.id}`, { method: "PATCH", as: "user:stranger", json: { order: "c" } })).status).toBe(403);

    // Back into the space itself.
    expect((await api(`/microdaos/${microdao}/space/channels/${b.id}`, { method: "PATCH", as: "user:owner", json: { group_id: null } })).status).toBe(200);
    expect(await state(gRoom, "m.space.child", b.matrix_room_id)).toEqual({});
    // "0" sorts before the default orders (creation instants, "2026-…").
    expect(await state(room, "m.space.child", b.matrix_room_id)).toEqual({ via: ["daarion.city"], order: "0" });
    expect((await spaceOf(microdao)).channels.map((c: { id: string }) => c.id)).toEqual([b.id, a.id]);
  });

  test("bad input is a clear 4xx and changes nothing", async () => {
    const microdao = newMicrodao();
    const a = await createChannel(server, "user:owner", { microdao_id: microdao });
    const groups = `/microdaos/${microdao}/groups`;
    for (const body of [{ name: "x", order: "x".repeat(51) }, { name: "x", order: "é" }, { name: "" }, { name: "x", extra: 1 }]) {
      const res = await api(groups, { method: "POST", as: "user:owner", json: body });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBeString();
    }
    const unknown = await api(`/microdaos/${microdao}/space/channels/${a.id}`, { method: "PATCH", as: "user:owner", json: { group_id: crypto.randomUUID() } });
    expect(unknown.status).toBe(400);
    expect((await unknown.json()).error).toBe("INVALID_GROUP");
    expect((await api(`/microdaos/${microdao}/space/channels/${a.id}`, { method: "PATCH", as: "user:stranger", json: { order: "b" } })).status).toBe(403);
    expect((await api(`/microdaos/microdao:other/space/channels/${a.id}`, { method: "PATCH", as: "user:owner", json: { order: "b" } })).status).toBe(404);
    expect((await api(`/microdaos/not-a-microdao/space`, { as: "user:owner" })).status).toBe(400);
    expect((await api(`/microdaos/${microdao}/groups/${crypto.randomUUID()}`, { method: "PATCH", as: "user:owner", json: { name: "y" } })).status).toBe(404);
    const view = await spaceOf(microdao);
    expect(view.groups).toEqual([]);
    expect(view.channels).toMatchObject([{ id: a.id, group_id: null }]);
  });

  test("a room a Matrix admin adds to the space is reported, not indexed as a channel", async () => {
    const microdao = newMicrodao();
    const a = await createChannel(server, "user:owner", { microdao_id: microdao });
    const space = await spaceOf(microdao);
    const { matrix } = server.app.deps;
    const foreign = await matrix.createRoom({ creator: "@someone:daarion.city", aliasLocalpart: `foreign${Date.now()}`, name: "Elsewhere", topic: null, visibility: "public", isEncrypted: false, isDirect: false });
    await matrix.sendState(space.matrix_room_id, SPACE_USER, "m.space.child", foreign.roomId, { via: ["daarion.city"], order: "0" });
    const view = await spaceOf(microdao);
    expect(view.foreign_children).toEqual([{ room_id: foreign.roomId, parent_room_id: space.matrix_room_id, order: "0", via: ["daarion.city"], added_by: SPACE_USER }]);
    expect(view.channels.map((c: { id: string }) => c.id)).toEqual([a.id]);
    // Only the microDAO's owners and admins see who added what.
    expect((await spaceOf(microdao, "user:stranger")).foreign_children).toEqual([]);
    // A later sync leaves it alone, and it is no channel.
    await createChannel(server, "user:owner", { microdao_id: microdao });
    expect((await children(space.matrix_room_id))[foreign.roomId]).toEqual({ via: ["daarion.city"], order: "0" });
    const [row] = await server.app.deps.sql`select count(*)::int as n from channels where matrix_room_id = ${foreign.roomId}`;
    expect(row!.n).toBe(0);
  });

  test("a child a Matrix admin adds arrives from the homeserver and is reported on NATS (messaging.space.child_reported)", async () => {
    const microdao = newMicrodao();
    await createChannel(server, "user:owner", { microdao_id: microdao });
    const space = await spaceOf(microdao);
    const { matrix } = server.app.deps;
    const admin = "@eve:daarion.city";
    await matrix.ensureUser(admin);
    await matrix.invite(space.matrix_room_id, SPACE_USER, admin);
    await matrix.join(space.matrix_room_id, admin);
    const foreign = await matrix.createRoom({ creator: admin, aliasLocalpart: `eve${Date.now()}`, name: "Eve's", topic: null, visibility: "public", isEncrypted: false, isDirect: false });
    const reported = nextPublished((e) => e.subject === "messaging.space.child_reported" && (e.payload as { room_id: string }).room_id === foreign.roomId);
    const { eventId } = await matrix.sendState(space.matrix_room_id, admin, "m.space.child", foreign.roomId, { via: ["daarion.city"], order: "k" });
    expect((await reported).payload).toEqual({
      event_id: `space.child_reported:${eventId}`,
      microdao_id: microdao,
      space_room_id: space.matrix_room_id,
      room_id: foreign.roomId,
      added_by: admin,
      via: ["daarion.city"],
      order: "k",
      matrix_event_id: eventId,
    });
    const [row] = await server.app.deps.sql`select count(*)::int as n from channels where matrix_room_id = ${foreign.roomId}`;
    expect(row!.n).toBe(0);
  });

  test("a space lost between its room and its row is found again, and channels without a place join it", async () => {
    const microdao = newMicrodao();
    const a = await createChannel(server, "user:owner", { microdao_id: microdao });
    const first = await spaceOf(microdao);
    // As if the service died after making the room, and the channel predated spaces.
    await server.app.deps.sql`delete from space_channels where microdao_id = ${microdao}`;
    await server.app.deps.sql`update microdao_spaces set matrix_room_id = null, claimed_at = null where microdao_id = ${microdao}`;
    expect((await api(`/microdaos/${microdao}/space`, { method: "POST", as: "user:stranger" })).status).toBe(403);
    const res = await api(`/microdaos/${microdao}/space`, { method: "POST", as: "user:owner" });
    expect(res.status).toBe(200);
    const again = await res.json();
    expect(again.matrix_room_id).toBe(first.matrix_room_id);
    expect(again.channels.map((c: { id: string }) => c.id)).toEqual([a.id]);
    const [made] = await server.app.deps.sql`select count(*)::int as n from local_matrix_rooms where creator = ${SPACE_USER} and room_id in (
      select room_id from local_matrix_state where type = 'm.room.name' and content->>'name' = ${microdao.slice(9)})`;
    expect(made!.n).toBe(1);
    expect(await state(a.matrix_room_id, "m.space.parent", first.matrix_room_id)).toMatchObject({ canonical: true });
  });

  test("a sync writes only what the index says changed; POST …/space compares with the rooms' state and repairs it", async () => {
    const microdao = newMicrodao();
    const a = await createChannel(server, "user:owner", { microdao_id: microdao });
    const space = await spaceOf(microdao);
    const room = space.matrix_room_id;
    const writes = async () => {
      const [row] = await server.app.deps.sql`select count(*)::int as n from local_matrix_events where room_id = ${room} and sender = ${SPACE_USER}`;
      return row!.n as number;
    };
    // Someone removes the child in Matrix behind the service's back.
    await server.app.deps.matrix.sendState(room, SPACE_USER, "m.space.child", a.matrix_room_id, {});
    const before = await writes();
    // A new channel: its own child, and the join rule; nothing else is rewritten.
    const b = await createChannel(server, "user:owner", { microdao_id: microdao });
    expect(await writes()).toBe(before + 2);
    expect(await state(room, "m.space.child", a.matrix_room_id)).toEqual({});
    expect(await state(room, "m.space.child", b.matrix_room_id)).toMatchObject({ via: ["daarion.city"] });
    expect((await api(`/microdaos/${microdao}/space`, { method: "POST", as: "user:owner" })).status).toBe(200);
    expect(await state(room, "m.space.child", a.matrix_room_id)).toEqual({ via: ["daarion.city"], order: space.channels[0].order });
    // In line now: another full sync writes nothing.
    const after = await writes();
    expect((await api(`/microdaos/${microdao}/space`, { method: "POST", as: "user:owner" })).status).toBe(200);
    expect(await writes()).toBe(after);
  });

  test("reconcile lists microDAOs whose channels are not in a space, and --fix brings them in", async () => {
    const microdao = newMicrodao();
    const a = await createChannel(server, "user:owner", { microdao_id: microdao });
    const b = await createChannel(server, "user:owner", { microdao_id: microdao });
    // As if both channels predated spaces.
    await server.app.deps.sql`delete from space_channels where microdao_id = ${microdao}`;
    const deps = { sql: server.app.deps.sql, matrix: server.app.deps.matrix, log: server.app.deps.log };
    const found = (await reconcileSpaces(deps, false)).filter((f) => f.microdao_id === microdao);
    expect(spaceReportLines(found)).toEqual([`space  ${microdao}: 2 channels not in its space`]);
    const fixed = (await reconcileSpaces(deps, true)).filter((f) => f.microdao_id === microdao);
    expect(spaceReportLines(fixed)).toEqual([`space  ${microdao}: 2 channels not in its space (synced)`]);
    expect((await reconcileSpaces(deps, false)).filter((f) => f.microdao_id === microdao)).toEqual([]);
    expect((await spaceOf(microdao)).channels.map((c: { id: string }) => c.id)).toEqual([a.id, b.id]);
  });
});
