import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";

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
