import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";
import { connect, type NatsConnection } from "nats";
import { natsUrl, serviceMissing } from "../helpers/services.ts";

// Members and agents of a channel.
{
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  const invite = (channelId: string, as: string, json: unknown) =>
    server.api(`/api/messaging/channels/${channelId}/members`, { method: "POST", as, json });
  const agentPost = (agent: string, json: unknown, headers: Record<string, string> = {}) =>
    server.api(`/internal/agents/${agent}/post-to-channel`, { method: "POST", json, headers });

  async function matrixMembership(roomId: string, userId: string) {
    const [row] = await server.app.deps.sql`
    select content->>'membership' as membership from local_matrix_state
    where room_id = ${roomId} and type = 'm.room.member' and state_key = ${userId}`;
    return row?.membership ?? null;
  }

  describe("members", () => {
    test("invite joins the member in Matrix under its mapped id, with role and capabilities", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "private" });
      const res = await invite(channel.id, "user:admin", {
        member_id: "user:alice",
        role: "admin",
        can_read: true,
        can_write: true,
        can_invite: true,
        can_create_tasks: true,
      });
      expect(res.status).toBe(201);
      expect(await res.json()).toMatchObject({
        channel_id: channel.id,
        member_id: "user:alice",
        member_type: "human",
        matrix_user_id: "@user-alice:daarion.city",
        role: "admin",
        can_invite: true,
        can_create_tasks: true,
        can_kick: false,
        matrix_power_level: 50,
        invited_by: "user:admin",
      });
      expect(await matrixMembership(channel.matrix_room_id, "@user-alice:daarion.city")).toBe("join");
      const [audit] = await server.app.deps.sql`
      select actor_id, target_id, metadata from channel_events where channel_id = ${channel.id} and event_type = 'member.invited'`;
      expect(audit).toEqual({ actor_id: "user:admin", target_id: "user:alice", metadata: { role: "admin" } });

      // alice may now invite in turn, and read the private channel.
      expect((await invite(channel.id, "user:alice", { member_id: "agent:sofia", role: "agent" })).status).toBe(201);
      expect(await matrixMembership(channel.matrix_room_id, "@agent-sofia:daarion.city")).toBe("join");
      const list = await (await server.api(`/api/messaging/channels/${channel.id}/members`, { as: "user:alice" })).json();
      expect(list.map((m: { member_id: string }) => m.member_id)).toEqual(["user:admin", "user:alice", "agent:sofia"]);
    });

    test("inviting twice is 409; without can_invite is 403; a non-member of a private channel gets 404", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "private" });
      expect((await invite(channel.id, "user:admin", { member_id: "user:bob" })).status).toBe(201);
      const again = await invite(channel.id, "user:admin", { member_id: "user:bob" });
      expect(again.status).toBe(409);
      expect((await again.json()).error).toBe("ALREADY_MEMBER");
      const byBob = await invite(channel.id, "user:bob", { member_id: "user:carol" });
      expect(byBob.status).toBe(403);
      const byStranger = await invite(channel.id, "user:stranger", { member_id: "user:carol" });
      expect(byStranger.status).toBe(404);
      expect(await matrixMembership(channel.matrix_room_id, "@user-carol:daarion.city")).toBeNull();
    });

    test("member_id and role are validated", async () => {
      const channel = await createChannel(server, "user:admin");
      for (const body of [{ member_id: "alice" }, { member_id: "user:Alice Smith" }, { member_id: "user:x", role: "king" }, { member_id: "bot:x" }]) {
        const res = await invite(channel.id, "user:admin", body);
        expect(res.status).toBe(400);
        expect((await res.json()).error).toBe("VALIDATION_FAILED");
      }
    });
  });

  describe("agents", () => {
    test("a member agent posts as m.notice, indexed with sender_type agent", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "microdao" });
      await invite(channel.id, "user:admin", { member_id: "agent:sofia", role: "agent" });
      const res = await agentPost("agent:sofia", { channel_id: channel.id, text: "Hello, I am Sofia" });
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body).toMatchObject({ status: "posted", message: { sender_id: "agent:sofia", sender_type: "agent", msgtype: "m.notice" } });
      expect(body.message_id).toBe(body.message.id);
      const [event] = await server.app.deps.sql`
      select sender, content from local_matrix_events where event_id = ${body.message.matrix_event_id}`;
      expect(event).toEqual({ sender: "@agent-sofia:daarion.city", content: { msgtype: "m.notice", body: "Hello, I am Sofia" } });
      // The short form of the agent id works too.
      expect((await agentPost("sofia", { channel_id: channel.id, text: "again" })).status).toBe(200);
    });

    test("a non-member agent, a silenced agent, or another caller posing as the agent is refused with 403", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "public" });
      await invite(channel.id, "user:admin", { member_id: "agent:muted", role: "agent", can_write: false });
      await invite(channel.id, "user:admin", { member_id: "agent:sofia", role: "agent" });
      const outsider = await agentPost("agent:intruder", { channel_id: channel.id, text: "let me speak" });
      expect(outsider.status).toBe(403);
      expect((await outsider.json()).error).toBe("FORBIDDEN");
      expect((await agentPost("agent:muted", { channel_id: channel.id, text: "shh" })).status).toBe(403);
      expect((await agentPost("agent:sofia", { channel_id: channel.id, text: "x" }, { "x-user-id": "user:mallory" })).status).toBe(403);
      const [count] = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channel.id}`;
      expect(count!.n).toBe(0);
      expect((await agentPost("agent:sofia", { channel_id: crypto.randomUUID(), text: "x" })).status).toBe(404);
    });

    test("the agent-filter context lists agents from real membership", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "microdao", microdao_id: "microdao:city" });
      await invite(channel.id, "user:admin", { member_id: "agent:sofia", role: "agent" });
      await invite(channel.id, "user:admin", { member_id: "agent:helper", role: "agent" });
      await invite(channel.id, "user:admin", { member_id: "agent:muted", role: "agent", can_write: false });
      await invite(channel.id, "user:admin", { member_id: "user:alice" });
      const res = await server.api(`/internal/messaging/channels/${channel.id}/context`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        channel_id: channel.id,
        microdao_id: "microdao:city",
        visibility: "microdao",
        allowed_agents: ["agent:helper", "agent:sofia"],
        disabled_agents: ["agent:muted"],
      });
      expect((await server.api(`/internal/messaging/channels/${crypto.randomUUID()}/context`)).status).toBe(404);
    });
  });
}

// Leaving, kicking, roles, capabilities and the audit log.
{
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
}

// Membership changes published on NATS.
{
  /** The new subjects reach a real NATS broker (the other suites watch the in-process listeners). */
  describe.skipIf(serviceMissing("NATS_URL"))("membership, pins and archive on NATS", () => {
    let server: TestServer;
    let nc: NatsConnection;
    const received: Array<{ subject: string; data: any }> = [];
    let wake: (() => void) | null = null;

    beforeAll(async () => {
      nc = await connect({ servers: natsUrl! });
      const sub = nc.subscribe("messaging.>");
      void (async () => {
        for await (const m of sub) {
          received.push({ subject: m.subject, data: m.json() });
          wake?.();
        }
      })();
      await nc.flush();
      server = await startTestServer({ NATS_URL: natsUrl! });
      await (server.app.deps.events as unknown as { ready(): Promise<void> }).ready();
    }, 60000);
    afterAll(async () => {
      await server?.stop();
      await nc?.drain();
    }, 60000);

    async function waitFor(subject: string, channelId: string, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = received.find((e) => e.subject === subject && e.data.channel_id === channelId);
        if (hit) return hit.data;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${subject}; got ${JSON.stringify(received.map((r) => r.subject))}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    }

    test("member.updated, member.kicked, member.left, message.pinned/unpinned, channel.updated, channel.archived", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "public" });
      const api = (path: string, method: string, as: string, json?: unknown) => server.api(`/api/messaging/channels/${channel.id}${path}`, { method, as, json });
      await api("/members", "POST", "user:admin", { member_id: "user:bob" });
      await api("/members", "POST", "user:admin", { member_id: "user:carol" });
      expect((await api("/members/user:bob", "PATCH", "user:admin", { can_kick: true })).status).toBe(200);
      expect((await api("/members/user:carol", "DELETE", "user:bob")).status).toBe(200);
      expect((await api("/members/user:bob", "DELETE", "user:bob")).status).toBe(200);
      const msg = await (await api("/messages", "POST", "user:admin", { text: "pin me" })).json();
      expect((await api("/pins", "POST", "user:admin", { message_id: msg.id })).status).toBe(201);
      expect((await api(`/pins/${msg.id}`, "DELETE", "user:admin")).status).toBe(204);
      expect((await api("", "PATCH", "user:admin", { topic: "new" })).status).toBe(200);
      expect((await api("", "DELETE", "user:admin")).status).toBe(200);

      expect(await waitFor("messaging.member.updated", channel.id)).toMatchObject({ member_id: "user:bob", can_kick: true, updated_by: "user:admin" });
      expect(await waitFor("messaging.member.kicked", channel.id)).toMatchObject({ member_id: "user:carol", kicked_by: "user:bob", via: "api" });
      expect(await waitFor("messaging.member.left", channel.id)).toMatchObject({ member_id: "user:bob", via: "api" });
      expect(await waitFor("messaging.message.pinned", channel.id)).toMatchObject({ message_id: msg.id, pinned_by: "user:admin" });
      expect(await waitFor("messaging.message.unpinned", channel.id)).toMatchObject({ message_id: msg.id, unpinned_by: "user:admin" });
      expect(await waitFor("messaging.channel.updated", channel.id)).toMatchObject({ fields: ["topic"], updated_by: "user:admin" });
      expect(await waitFor("messaging.channel.archived", channel.id)).toMatchObject({ archived_by: "user:admin", microdao_id: "microdao:daarion" });
    });
  });
}
