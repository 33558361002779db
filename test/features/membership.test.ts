import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";

let server: TestServer;
const published: PublishedEvent[] = [];
beforeAll(async () => {
  server = await startTestServer();
  server.app.deps.events.subscribe((e) => published.push(e));
}, 60000);
afterAll(() => server?.stop(), 60000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
const invite = (channelId: string, as: string, json: Record<string, unknown>) => api(`/${channelId}/members`, { method: "POST", as, json });
const remove = (channelId: string, as: string, memberId: string) => api(`/${channelId}/members/${memberId}`, { method: "DELETE", as });
const patch = (channelId: string, as: string, memberId: string, json: unknown) => api(`/${channelId}/members/${memberId}`, { method: "PATCH", as, json });
const ws = (channelId: string) => WsInbox.open(`${server.wsUrl}/ws/messaging/${channelId}?user_id=user:owner`);
const mx = (id: string) => `@${id.replace(":", "-")}:daarion.city`;

async function roomState(roomId: string, type: string, stateKey: string) {
  const [row] = await server.app.deps.sql`
    select e.sender, s.content from local_matrix_state s join local_matrix_events e on e.event_id = s.event_id
    where s.room_id = ${roomId} and s.type = ${type} and s.state_key = ${stateKey}`;
  return row as { sender: string; content: Record<string, any> } | undefined;
}
const memberIds = async (channelId: string) =>
  ((await (await api(`/${channelId}/members`, { as: "user:owner" })).json()) as Array<{ member_id: string }>).map((m) => m.member_id);
const audit = async (channelId: string, type: string): Promise<unknown[]> => [
  ...(await server.app.deps.sql`
    select actor_id, target_id, metadata from channel_events where channel_id = ${channelId} and event_type = ${type} order by position`),
];
function publishedOn(subject: string, memberId: string) {
  return published.filter((e) => e.subject === subject && (e.payload as { member_id?: string }).member_id === memberId);
}

describe("leave and kick", () => {
  test("an owner kicks a member: Matrix kick by the owner, left_at set, frame, NATS, audit; the private channel is gone for them", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "private" });
    await invite(channel.id, "user:owner", { member_id: "user:bob" });
    expect((await api(`/${channel.id}`, { as: "user:bob" })).status).toBe(200);
    const inbox = await ws(channel.id);

    const res = await api(`/${channel.id}/members/user:bob?reason=spam`, { method: "DELETE", as: "user:owner" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ channel_id: channel.id, member_id: "user:bob", status: "kicked" });

    expect(await inbox.nextJson()).toMatchObject({ type: "member.left", kicked_by: "user:owner", member: { member_id: "user:bob" } });
    inbox.close();
    expect(await roomState(channel.matrix_room_id, "m.room.member", mx("user:bob"))).toEqual({
      sender: mx("user:owner"),
      content: { membership: "leave", reason: "spam" },
    });
    const [row] = await server.app.deps.sql`select left_at from channel_members where channel_id = ${channel.id} and member_id = 'user:bob'`;
    expect(row!.left_at).toBeInstanceOf(Date);
    expect(await audit(channel.id, "member.kicked")).toEqual([{ actor_id: "user:owner", target_id: "user:bob", metadata: { via: "api", reason: "spam" } }]);
    expect(publishedOn("messaging.member.kicked", "user:bob")).toHaveLength(1);
    expect(publishedOn("messaging.member.kicked", "user:bob")[0]!.payload).toMatchObject({ channel_id: channel.id, kicked_by: "user:owner", via: "api" });

    expect((await api(`/${channel.id}`, { as: "user:bob" })).status).toBe(404);
    expect((await api(`/${channel.id}/messages`, { as: "user:bob" })).status).toBe(404);
    const write = await api(`/${channel.id}/messages`, { method: "POST", as: "user:bob", json: { text: "still here?" } });
    expect(write.status).toBe(404);
    expect(await memberIds(channel.id)).toEqual(["user:owner"]);
  });

  test("a member leaves: a Matrix leave as themselves, member.left without kicked_by, messaging.member.left", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "private" });
    await invite(channel.id, "user:owner", { member_id: "user:carol" });
    const inbox = await ws(channel.id);
    const res = await remove(channel.id, "user:carol", "user:carol");
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe("left");
    const frame = await inbox.nextJson();
    expect(frame).toMatchObject({ type: "member.left", member: { member_id: "user:carol" } });
    expect(frame.kicked_by).toBeUndefined();
    inbox.close();
    expect(await roomState(channel.matrix_room_id, "m.room.member", mx("user:carol"))).toEqual({ sender: mx("user:carol"), content: { membership: "leave" } });
    expect(await audit(channel.id, "member.left")).toEqual([{ actor_id: "user:carol", target_id: "user:carol", metadata: { via: "api" } }]);
    expect(publishedOn("messaging.member.left", "user:carol")).toHaveLength(1);
    expect(await memberIds(channel.id)).toEqual(["user:owner"]);
  });

  test("who may kick whom; refusals write nothing", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    await invite(channel.id, "user:owner", { member_id: "user:admin1", role: "admin" });
    await invite(channel.id, "user:owner", { member_id: "user:admin2", role: "admin" });
    await invite(channel.id, "user:owner", { member_id: "user:kicker", can_kick: true });
    await invite(channel.id, "user:owner", { member_id: "user:plain" });
    await invite(channel.id, "user:owner", { member_id: "user:victim" });
    const before = await memberIds(channel.id);

    const refusals: Array<[string, string, number, string]> = [
      ["user:plain", "user:victim", 403, "FORBIDDEN"], // no can_kick
      ["user:kicker", "user:admin1", 403, "FORBIDDEN"], // only owners remove admins
      ["user:admin1", "user:admin2", 403, "FORBIDDEN"],
      ["user:admin1", "user:owner", 403, "FORBIDDEN"], // owners are never kicked
      ["user:owner", "user:owner", 409, "CREATOR_CANNOT_LEAVE"],
      ["user:owner", "user:nobody", 404, "NOT_FOUND"],
      ["user:stranger", "user:victim", 403, "FORBIDDEN"],
    ];
    for (const [caller, target, status, code] of refusals) {
      const res = await remove(channel.id, caller, target);
      expect([caller, target, res.status]).toEqual([caller, target, status]);
      expect((await res.json()).error).toBe(code);
    }
    expect((await remove(channel.id, "user:owner", "not-an-id")).status).toBe(400);
    expect((await remove(crypto.randomUUID(), "user:owner", "user:victim")).status).toBe(404);
    expect(await memberIds(channel.id)).toEqual(before);
    expect(await audit(channel.id, "member.kicked")).toEqual([]);

    // A member with can_kick has no power in Matrix: the creator's account kicks for them.
    expect((await remove(channel.id, "user:kicker", "user:victim")).status).toBe(200);
    expect((await roomState(channel.matrix_room_id, "m.room.member", mx("user:victim")))?.sender).toBe(mx("user:owner"));
    // An admin holds power 50 in the room and kicks as themselves.
    expect((await remove(channel.id, "user:admin1", "user:plain")).status).toBe(200);
    expect((await roomState(channel.matrix_room_id, "m.room.member", mx("user:plain")))?.sender).toBe(mx("user:admin1"));
    expect((await remove(channel.id, "user:owner", "user:admin2")).status).toBe(200);
    expect(await memberIds(channel.id)).toEqual(["user:owner", "user:admin1", "user:kicker"]);
  });

  test("kicks and leaves made in Matrix sync back with frames and NATS", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    await invite(channel.id, "user:owner", { member_id: "user:dave" });
    await invite(channel.id, "user:owner", { member_id: "user:erin" });
    const inbox = await ws(channel.id);
    await server.app.deps.matrix.kick(channel.matrix_room_id, mx("user:owner"), mx("user:dave"));
    expect(await inbox.nextJson()).toMatchObject({ type: "member.left", kicked_by: "user:owner", member: { member_id: "user:dave" } });
    await server.app.deps.matrix.leave(channel.matrix_room_id, mx("user:erin"));
    const left = await inbox.nextJson();
    expect(left).toMatchObject({ type: "member.left", member: { member_id: "user:erin" } });
    expect(left.kicked_by).toBeUndefined();
    inbox.close();
    expect(publishedOn("messaging.member.kicked", "user:dave")[0]!.payload).toMatchObject({ kicked_by: "user:owner", via: "matrix" });
    expect(publishedOn("messaging.member.left", "user:erin")[0]!.payload).toMatchObject({ via: "matrix" });
    expect(await memberIds(channel.id)).toEqual(["user:owner"]);
  });
});

describe("role and capabilities", () => {
  test("an owner makes a member admin: power 50 in m.room.power_levels, member.updated, audit, NATS; and back", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "private" });
    await invite(channel.id, "user:owner", { member_id: "user:alice" });
    const inbox = await ws(channel.id);
    const res = await patch(channel.id, "user:owner", "user:alice", { role: "admin", can_kick: true });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ member_id: "user:alice", role: "admin", can_kick: true, matrix_power_level: 50 });
    expect(await inbox.nextJson()).toMatchObject({ type: "member.updated", updated_by: "user:owner", member: { member_id: "user:alice", role: "admin" } });
    const levels = await roomState(channel.matrix_room_id, "m.room.power_levels", "");
    expect(levels).toMatchObject({ sender: mx("user:owner"), content: { users: { [mx("user:owner")]: 100, [mx("user:alice")]: 50 } } });
    expect(await audit(channel.id, "member.role_changed")).toEqual([
      {
        actor_id: "user:owner",
        target_id: "user:alice",
        metadata: { via: "api", from: { role: "member", can_kick: false, matrix_power_level: 0 }, to: { role: "admin", can_kick: true, matrix_power_level: 50 } },
      },
    ]);
    expect(publishedOn("messaging.member.updated", "user:alice")[0]!.payload).toMatchObject({ role: "admin", previous_role: "member", updated_by: "user:owner", via: "api" });

    // Capabilities alone leave the power levels alone.
    expect((await patch(channel.id, "user:owner", "user:alice", { can_create_tasks: true })).status).toBe(200);
    expect(await inbox.nextJson()).toMatchObject({ type: "member.updated", member: { can_create_tasks: true, role: "admin" } });
    expect((await patch(channel.id, "user:owner", "user:alice", { role: "member" })).status).toBe(200);
    expect(await inbox.nextJson()).toMatchObject({ type: "member.updated", member: { role: "member", matrix_power_level: 0 } });
    inbox.close();
    expect((await roomState(channel.matrix_room_id, "m.room.power_levels", ""))!.content.users).toEqual({ [mx("user:owner")]: 100 });
  });

  test("who may change whom; bad bodies are 400; refusals change nothing", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    await invite(channel.id, "user:owner", { member_id: "user:adm", role: "admin" });
    await invite(channel.id, "user:owner", { member_id: "user:adm2", role: "admin" });
    await invite(channel.id, "user:owner", { member_id: "user:mem", can_invite: true });
    const refusals: Array<[string, string, unknown, number]> = [
      ["user:mem", "user:adm", { can_write: false }, 403],
      ["user:adm", "user:mem", { role: "owner" }, 403],
      ["user:adm", "user:owner", { can_write: false }, 403],
      ["user:adm", "user:adm2", { role: "member" }, 403],
      ["user:stranger", "user:mem", { can_write: false }, 403],
      ["user:owner", "user:nobody", { can_write: false }, 404],
      ["user:owner", "user:mem", {}, 400],
      ["user:owner", "user:mem", { role: "king" }, 400],
      ["user:owner", "user:mem", { can_fly: true }, 400],
    ];
    for (const [caller, target, body, status] of refusals) {
      const res = await patch(channel.id, caller, target, body);
      expect([caller, target, res.status]).toEqual([caller, target, status]);
    }
    expect(await audit(channel.id, "member.role_changed")).toEqual([]);
    // An admin may make a member an admin; the member's silence holds.
    expect((await patch(channel.id, "user:adm", "user:mem", { role: "admin", can_write: false })).status).toBe(200);
    const members = await (await api(`/${channel.id}/members`, { as: "user:owner" })).json();
    expect(members.find((m: { member_id: string }) => m.member_id === "user:mem")).toMatchObject({ role: "admin", can_write: false, matrix_power_level: 50 });
    expect((await api(`/${channel.id}/messages`, { method: "POST", as: "user:mem", json: { text: "x" } })).status).toBe(403);
  });

  test("power levels changed in a Matrix client change roles", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    await invite(channel.id, "user:owner", { member_id: "user:frank" });
    const inbox = await ws(channel.id);
    const levels = (await server.app.deps.matrix.getState(channel.matrix_room_id, "m.room.power_levels", ""))!;
    const users = { ...(levels.users as Record<string, number>), [mx("user:frank")]: 50 };
    await server.app.deps.matrix.sendState(channel.matrix_room_id, mx("user:owner"), "m.room.power_levels", "", { ...levels, users });
    expect(await inbox.nextJson()).toMatchObject({ type: "member.updated", updated_by: "user:owner", member: { member_id: "user:frank", role: "admin", matrix_power_level: 50 } });
    inbox.close();
    expect(await audit(channel.id, "member.role_changed")).toEqual([
      { actor_id: "user:owner", target_id: "user:frank", metadata: { via: "matrix", from: { role: "member", matrix_power_level: 0 }, to: { role: "admin", matrix_power_level: 50 } } },
    ]);
    expect(publishedOn("messaging.member.updated", "user:frank")[0]!.payload).toMatchObject({ role: "admin", via: "matrix" });
  });
});

describe("audit log", () => {
  test("GET …/events pages newest first for readers; hidden from others", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "private" });
    await invite(channel.id, "user:owner", { member_id: "user:g1" });
    await invite(channel.id, "user:owner", { member_id: "user:g2" });
    await remove(channel.id, "user:owner", "user:g1");
    const first = await api(`/${channel.id}/events?limit=2`, { as: "user:g2" });
    expect(first.status).toBe(200);
    const page1 = await first.json();
    expect(page1.map((e: { event_type: string }) => e.event_type)).toEqual(["member.kicked", "member.invited"]);
    expect(page1[0]).toMatchObject({ channel_id: channel.id, actor_id: "user:owner", target_id: "user:g1" });
    const cursor = first.headers.get("x-next-cursor");
    expect(cursor).toBeTruthy();
    const page2 = await (await api(`/${channel.id}/events?limit=2&cursor=${cursor}`, { as: "user:g2" })).json();
    expect(page2.map((e: { event_type: string; target_id: string | null }) => [e.event_type, e.target_id])).toEqual([
      ["member.invited", "user:g1"],
      ["channel.created", null],
    ]);
    const kicks = await (await api(`/${channel.id}/events?type=member.kicked`, { as: "user:owner" })).json();
    expect(kicks).toHaveLength(1);
    expect((await api(`/${channel.id}/events`, { as: "user:g1" })).status).toBe(404);
    expect((await api(`/${channel.id}/events?limit=0`, { as: "user:owner" })).status).toBe(400);
  });
});
