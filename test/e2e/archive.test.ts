import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { nextRoomEvent } from "../helpers/room-events.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("archive with a Matrix client (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;
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

  test("an archived channel's room turns invite-only and read-only for the client; REST writes are 410", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);
    await client.joinRoom(channel.matrix_alias);
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.joined" });

    const readOnly = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.power_levels" && e.getContent().events_default === 100);
    const inviteOnly = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.join_rules" && e.getContent().join_rule === "invite");
    const res = await api(`/${channel.id}`, { method: "DELETE", as: "user:admin" });
    expect(res.status).toBe(200);
    await Promise.all([readOnly, inviteOnly]);
    expect(await inbox.nextJson()).toMatchObject({ type: "channel.archived", channel: { id: channel.id } });
    inbox.close();

    const refused = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "still talking" } as never).then(
      () => null,
      (err: { errcode?: string }) => err.errcode,
    );
    expect(refused).toBe("M_FORBIDDEN");
    const write = await api(`/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "x" } });
    expect(write.status).toBe(410);
    expect((await api(`/${channel.id}/messages`, { as: "user:admin" })).status).toBe(200);
  });
});
