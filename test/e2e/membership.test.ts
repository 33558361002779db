import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { nextRoomEvent } from "../helpers/room-events.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("membership with a Matrix client (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;
  const mx = (id: string) => `@${id.replace(":", "-")}:${synapse!.serverName}`;
  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  /** A public channel Bob (the Element user) has joined, seen joined by the index. */
  async function channelWithBob() {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);
    await client.joinRoom(channel.matrix_alias);
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.joined", member: { member_id: `matrix:${bob.userId}` } });
    return { channel, inbox };
  }

  test("a kick and a leave over REST are Matrix kick and leave events the client sees", async () => {
    const { channel, inbox } = await channelWithBob();
    await api(`/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "user:alice" } });
    expect(await inbox.nextJson()).toMatchObject({ type: "member.joined", member: { member_id: "user:alice" } });

    const left = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.member" && e.getStateKey() === mx("user:alice") && e.getContent().membership === "leave");
    const res = await api(`/${channel.id}/members/user:alice`, { method: "DELETE", as: "user:alice" });
    expect(res.status).toBe(200);
    expect((await left).getSender()).toBe(mx("user:alice"));
    expect(await inbox.nextJson()).toMatchObject({ type: "member.left", member: { member_id: "user:alice" } });

    const kicked = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.member" && e.getStateKey() === bob.userId && e.getContent().membership === "leave");
    const kick = await api(`/${channel.id}/members/matrix:${bob.userId}?reason=testing`, { method: "DELETE", as: "user:admin" });
    expect(kick.status).toBe(200);
    expect(await kick.json()).toMatchObject({ status: "kicked" });
    const event = await kicked;
    expect(event.getSender()).toBe(mx("user:admin"));
    expect(event.getContent().reason).toBe("testing");
    expect(await inbox.nextJson()).toMatchObject({ type: "member.left", kicked_by: "user:admin", member: { member_id: `matrix:${bob.userId}` } });
    // The kick's echo from /sync changes nothing: the next frame is our own pong.
    inbox.ws.send("ping");
    expect(await inbox.next(10000)).toBe("pong");
    inbox.close();
    const members = await (await api(`/${channel.id}/members`, { as: "user:admin" })).json();
    expect(members.map((m: { member_id: string }) => m.member_id)).toEqual(["user:admin"]);
  });

  test("PATCH role sets the client's power level; the client's own kicks and power changes sync back", async () => {
    const { channel, inbox } = await channelWithBob();
    await api(`/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "user:carol" } });
    await api(`/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "user:dave" } });
    expect(await inbox.nextJson()).toMatchObject({ type: "member.joined", member: { member_id: "user:carol" } });
    expect(await inbox.nextJson()).toMatchObject({ type: "member.joined", member: { member_id: "user:dave" } });

    // Changing power levels takes power 100 in Synapse's presets: Bob becomes an owner.
    const powered = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.power_levels" && e.getContent().users?.[bob.userId] === 100);
    const res = await api(`/${channel.id}/members/matrix:${bob.userId}`, { method: "PATCH", as: "user:admin", json: { role: "owner" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ role: "owner", matrix_power_level: 100 });
    await powered;
    expect(await inbox.nextJson()).toMatchObject({ type: "member.updated", member: { member_id: `matrix:${bob.userId}`, role: "owner" } });

    // Bob, now an owner in Element, kicks carol and makes dave a moderator.
    await client.kick(channel.matrix_room_id, mx("user:carol"), "off topic");
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.left", kicked_by: `matrix:${bob.userId}`, member: { member_id: "user:carol" } });
    await client.setPowerLevel(channel.matrix_room_id, mx("user:dave"), 50);
    expect(await inbox.nextJson(20000)).toMatchObject({
      type: "member.updated",
      updated_by: `matrix:${bob.userId}`,
      member: { member_id: "user:dave", role: "admin", matrix_power_level: 50 },
    });
    inbox.close();
    const events = await (await api(`/${channel.id}/events?limit=3`, { as: "user:admin" })).json();
    expect(events.map((e: { event_type: string; actor_id: string; target_id: string }) => [e.event_type, e.actor_id, e.target_id])).toEqual([
      ["member.role_changed", `matrix:${bob.userId}`, "user:dave"],
      ["member.kicked", `matrix:${bob.userId}`, "user:carol"],
      ["member.role_changed", "user:admin", `matrix:${bob.userId}`],
    ]);
  });
});
