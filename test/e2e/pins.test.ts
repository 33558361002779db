import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { nextRoomEvent } from "../helpers/room-events.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("pins with a Matrix client (Synapse)", () => {
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

  test("REST pins reach the client's m.room.pinned_events; the client's pin changes sync back", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);
    await client.joinRoom(channel.matrix_alias);
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.joined" });
    const send = async (text: string) => (await (await api(`/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text } })).json()) as { id: string; matrix_event_id: string };
    const a = await send("alpha");
    const b = await send("beta");
    expect((await inbox.nextJson()).type).toBe("message.created");
    expect((await inbox.nextJson()).type).toBe("message.created");

    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.pinned_events");
    const res = await api(`/${channel.id}/pins`, { method: "POST", as: "user:admin", json: { message_id: a.id } });
    expect(res.status).toBe(201);
    expect((await seen).getContent()).toEqual({ pinned: [a.matrix_event_id] });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.pinned", pin: { message_id: a.id } });

    // Bob needs power for room state: make him an admin, then pin and unpin in the client.
    expect((await api(`/${channel.id}/members/matrix:${bob.userId}`, { method: "PATCH", as: "user:admin", json: { role: "admin" } })).status).toBe(200);
    expect((await inbox.nextJson()).type).toBe("member.updated");
    await client.sendStateEvent(channel.matrix_room_id, "m.room.pinned_events" as never, { pinned: [a.matrix_event_id, b.matrix_event_id] } as never, "");
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "message.pinned", pin: { message_id: b.id, pinned_by: `matrix:${bob.userId}` } });
    await client.sendStateEvent(channel.matrix_room_id, "m.room.pinned_events" as never, { pinned: [b.matrix_event_id] } as never, "");
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "message.unpinned", message_id: a.id, unpinned_by: `matrix:${bob.userId}` });
    inbox.close();
    const pins = await (await api(`/${channel.id}/pins`, { as: "user:admin" })).json();
    expect(pins.map((p: { message_id: string }) => p.message_id)).toEqual([b.id]);

    const unpinned = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.pinned_events" && e.getContent().pinned?.length === 0);
    expect((await api(`/${channel.id}/pins/${b.id}`, { method: "DELETE", as: "user:admin" })).status).toBe(204);
    await unpinned;
  });
});
