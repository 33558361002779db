import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient, MatrixEvent as SdkEvent } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { nextRoomEvent } from "../helpers/room-events.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { hsToken, jwtTestEnv } from "../helpers/jwt.ts";
import { READ_REVOKED_CLOSE_CODE } from "../../src/realtime/sockets.ts";

// Each case waits on a real homeserver round trip, under its own timeouts.
setDefaultTimeout(60_000);

/** Consumes frames until one of `type` (matching `pred`) arrives. */
async function frame(ws: WsInbox, type: string, pred: (f: any) => boolean = () => true) {
  for (;;) {
    const f = await ws.nextJson(15000);
    if (f.type === type && pred(f)) return f;
  }
}

describe.skipIf(synapseMissing())("JWT authentication against Synapse", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(jwtTestEnv(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" })), { token: (sub) => hsToken(sub) });
    bob = await registerRealUser("authbob");
    client = await elementClient(bob);
  }, 120000);

  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  const mx = (id: string) => `@${id.replace(":", "-")}:${synapse!.serverName}`;

  test("a microDAO member joins an invite-only microdao room by writing; an Element admin's kick closes their socket", async () => {
    const channel = await createChannel(server, "user:alice", { visibility: "microdao", microdao_id: "microdao:daarion" });
    const base = `/api/messaging/channels/${channel.id}`;
    const room = channel.matrix_room_id;
    const alice = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${channel.id}`, ["bearer", await hsToken("user:alice")]));
    await alice.opened;

    // Bob (Element) is invited in and made an admin, so he may kick in Matrix.
    const invited = await server.api(`${base}/members`, { method: "POST", as: "user:alice", json: { member_id: `matrix:${bob.userId}` } });
    expect(invited.status).toBeLessThan(300);
    await client.joinRoom(room);
    await frame(alice, "member.joined", (f) => f.member.member_id === `matrix:${bob.userId}`);
    const promoted = await server.api(`${base}/members/${encodeURIComponent(`matrix:${bob.userId}`)}`, { method: "PATCH", as: "user:alice", json: { role: "admin" } });
    expect(promoted.status).toBe(200);

    // Cleo holds a token listing microdao:daarion: she reads, and her first message joins her in Matrix.
    const cleo = `Bearer ${await hsToken("user:cleo", { microdaos: ["microdao:daarion"] })}`;
    expect((await fetch(server.url + base, { headers: { authorization: cleo } })).status).toBe(200);
    const joinSeen = nextRoomEvent(client, room, (e: SdkEvent) => e.getType() === "m.room.member" && e.getStateKey() === mx("user:cleo") && e.getContent().membership === "join");
    const textSeen = nextRoomEvent(client, room, (e: SdkEvent) => e.getContent().body === "hello from the microDAO");
    const sent = await fetch(`${server.url}${base}/messages`, {
      method: "POST",
      headers: { authorization: cleo, "content-type": "application/json" },
      body: JSON.stringify({ text: "hello from the microDAO" }),
    });
    expect(sent.status).toBe(201);
    await joinSeen;
    expect((await textSeen).getSender()).toBe(mx("user:cleo"));
    expect((await frame(alice, "message.created")).message).toMatchObject({ sender_id: "user:cleo" });

    // Bob kicks Cleo in Element: her socket gets member.left, then closes with the documented code.
    const cleoWs = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?access_token=${encodeURIComponent(cleo.slice(7))}`);
    await client.kick(room, mx("user:cleo"), "off topic");
    expect(await frame(cleoWs, "member.left")).toMatchObject({ member: { member_id: "user:cleo" }, kicked_by: `matrix:${bob.userId}` });
    expect(await cleoWs.closed).toMatchObject({ code: READ_REVOKED_CLOSE_CODE });
    expect(await frame(alice, "member.left")).toMatchObject({ member: { member_id: "user:cleo" } });
    alice.close();
  });
});
