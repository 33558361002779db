import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHmac } from "node:crypto";
import type { MatrixClient } from "matrix-js-sdk";
import { MatrixRTCSessionEvent } from "matrix-js-sdk/lib/matrixrtc/index.js";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";
import { SYNAPSE_TURN_URIS, turnSharedSecret } from "../../scripts/synapse.ts";
import { rtcMembership as sdkMembership } from "../helpers/call-membership.ts";

setDefaultTimeout(60_000);
const MEMBER = "org.matrix.msc3401.call.member";
// The users are registered through the admin API, whose tokens have no device the SDK knows; Element Call's devices are named like these.
const BOB_DEVICE = "BOBPHONE";
const CAROL_DEVICE = "CAROLLAPTOP";

/** The membership content matrix-js-sdk's MembershipManager sends when Element Call joins the room's call (audio). */
const rtcMembership = (deviceId: string, extra: Record<string, unknown> = {}) => sdkMembership(deviceId, { "m.call.intent": "audio", ...extra });

describe.skipIf(synapseMissing())("calls with Element users (Synapse, matrix-js-sdk)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let carol: { userId: string; accessToken: string };
  let bobClient: MatrixClient;
  let carolClient: MatrixClient;
  const published: PublishedEvent[] = [];
  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging${path}`, init);
  const callEvents = (channelId: string) => published.filter((e) => e.subject === "messaging.call.updated" && (e.payload as any).channel_id === channelId).map((e) => e.payload as any);

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    server.app.deps.events.subscribe((e) => published.push(e));
    [bob, carol] = await Promise.all([registerRealUser("bob"), registerRealUser("carol")]);
    [bobClient, carolClient] = await Promise.all([elementClient(bob), elementClient(carol)]);
  }, 120000);
  afterAll(async () => {
    bobClient?.stopClient();
    carolClient?.stopClient();
    await server?.stop();
  }, 60000);

  /**
   * A channel both Element users joined (a private one is entered by invitation: Synapse refuses
   * m.call.invite in public rooms); both are plain members: channel rooms let every member
   * write call membership (power 0), though other room state needs 50.
   */
  async function channelWithElementUsers(visibility: "public" | "private" = "public") {
    const channel = await createChannel(server, "user:admin", { visibility });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);
    for (const user of [bob, carol]) {
      if (visibility === "private") {
        const invited = await api(`/channels/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: `matrix:${user.userId}` } });
        expect(invited.status).toBeLessThan(300);
      }
    }
    await bobClient.joinRoom(visibility === "public" ? channel.matrix_alias : channel.matrix_room_id);
    await carolClient.joinRoom(visibility === "public" ? channel.matrix_alias : channel.matrix_room_id);
    const joined = new Set<string>();
    while (joined.size < 2) {
      const frame = await inbox.nextOfType("member.joined", 20000);
      if ([bob.userId, carol.userId].map((u) => `matrix:${u}`).includes(frame.member.member_id)) joined.add(frame.member.member_id);
    }
    return { channel, inbox };
  }

  /** The room's MatrixRTC call as matrix-js-sdk's own session model sees it (what Element Call shows). */
  function sdkParticipants(client: MatrixClient, roomId: string): string[] {
    const room = client.getRoom(roomId)!;
    return client.matrixRTC
      .getRoomSession(room)
      .memberships.map((m) => `${m.sender}|${m.deviceId}`)
      .sort();
  }

  /** Waits (bounded) until the client's session model holds exactly `want`, re-checking whenever its memberships change. */
  async function sdkSees(client: MatrixClient, roomId: string, want: string[], timeoutMs = 20000): Promise<void> {
    const session = client.matrixRTC.getRoomSession(client.getRoom(roomId)!);
    const matches = () => JSON.stringify(sdkParticipants(client, roomId)) === JSON.stringify([...want].sort());
    if (matches()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.off(MatrixRTCSessionEvent.MembershipsChanged, check);
        reject(new Error(`matrix-js-sdk sees ${JSON.stringify(sdkParticipants(client, roomId))}, not ${JSON.stringify(want)}`));
      }, timeoutMs);
      function check() {
        if (!matches()) return;
        clearTimeout(timer);
        session.off(MatrixRTCSessionEvent.MembershipsChanged, check);
        resolve();
      }
      session.on(MatrixRTCSessionEvent.MembershipsChanged, check);
    });
  }

  test("Element joins and leaves the room's MatrixRTC call: call.updated, messaging.call.updated and GET …/call agree with matrix-js-sdk's session", async () => {
    const { channel, inbox } = await channelWithElementUsers();
    const bobKey = `_${bob.userId}_${BOB_DEVICE}_m.call`;
    await bobClient.sendStateEvent(channel.matrix_room_id, MEMBER as never, rtcMembership(BOB_DEVICE) as never, bobKey);
    const joined = (await inbox.nextOfType("call.updated", 20000)).call;
    expect(joined).toMatchObject({
      active: true,
      participant_count: 1,
      member_ids: [`matrix:${bob.userId}`],
      participants: [{ member_id: `matrix:${bob.userId}`, matrix_user_id: bob.userId, device_id: BOB_DEVICE, call_id: "", application: "m.call" }],
      matrix_room_id: channel.matrix_room_id,
      join_url: `https://matrix.to/#/${encodeURIComponent(channel.matrix_alias)}`,
    });
    // Carol's client sees the same call: one membership, Bob's device.
    await sdkSees(carolClient, channel.matrix_room_id, [`${bob.userId}|${BOB_DEVICE}`]);
    const rest = await (await api(`/channels/${channel.id}/call`, { as: "user:admin" })).json();
    expect(rest.participants.map((p: { matrix_user_id: string; device_id: string }) => `${p.matrix_user_id}|${p.device_id}`)).toEqual(sdkParticipants(carolClient, channel.matrix_room_id));

    // Carol joins on her own device with a membership that runs out in 2 s (her client "crashed"):
    // the service announces her gone by itself, as matrix-js-sdk stops counting her.
    const carolKey = `_${carol.userId}_${CAROL_DEVICE}_m.call`;
    await carolClient.sendStateEvent(channel.matrix_room_id, MEMBER as never, rtcMembership(CAROL_DEVICE, { created_ts: Date.now(), expires: 2000 }) as never, carolKey);
    const both = (await inbox.nextOfType("call.updated", 20000)).call;
    expect(both).toMatchObject({ participant_count: 2, member_ids: [`matrix:${bob.userId}`, `matrix:${carol.userId}`] });
    const carolExpired = (await inbox.nextOfType("call.updated", 20000)).call;
    expect(carolExpired).toMatchObject({ participant_count: 1, member_ids: [`matrix:${bob.userId}`] });
    await sdkSees(bobClient, channel.matrix_room_id, [`${bob.userId}|${BOB_DEVICE}`]);

    // Bob hangs up: Element empties his membership event.
    await bobClient.sendStateEvent(channel.matrix_room_id, MEMBER as never, {} as never, bobKey);
    const left = (await inbox.nextOfType("call.updated", 20000)).call;
    expect(left).toMatchObject({ active: false, participant_count: 0, participants: [] });
    await sdkSees(carolClient, channel.matrix_room_id, []);
    inbox.close();
    expect(callEvents(channel.id).map((e) => [e.active, e.participant_count])).toEqual([
      [true, 1],
      [true, 2],
      [true, 1],
      [false, 0],
    ]);
    // Element sees correct Matrix state: the service wrote none of it.
    const state = await bobClient.roomState(channel.matrix_room_id);
    expect(state.filter((e) => e.type === MEMBER).map((e) => e.sender).sort()).toEqual([bob.userId, carol.userId].sort());
  });

  test("matrix-js-sdk's own MatrixRTCSession (what Element Call runs) joins and leaves: the service follows it", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);
    const dan = await registerRealUser("dan");
    const { device_id: deviceId } = (await (await fetch(`${synapse!.url}/_matrix/client/v3/account/whoami`, { headers: { authorization: `Bearer ${dan.accessToken}` } })).json()) as { device_id: string };
    const danClient = await elementClient({ ...dan, deviceId });
    try {
      await danClient.joinRoom(channel.matrix_alias);
      await inbox.nextOfType("member.joined", 20000);
      expect((await api(`/channels/${channel.id}/members/matrix:${dan.userId}`, { method: "PATCH", as: "user:admin", json: { role: "admin" } })).status).toBe(200);
      await inbox.nextOfType("member.updated");
      await sdkSees(danClient, channel.matrix_room_id, []);
      const session = danClient.matrixRTC.getRoomSession(danClient.getRoom(channel.matrix_room_id)!);
      session.joinRoomSession([{ type: "livekit", livekit_service_url: "https://livekit.example.org", livekit_alias: channel.matrix_room_id }]);
      const joined = (await inbox.nextOfType("call.updated", 20000)).call;
      expect(joined).toMatchObject({ active: true, participant_count: 1, member_ids: [`matrix:${dan.userId}`] });
      expect(joined.participants).toEqual([
        expect.objectContaining({ matrix_user_id: dan.userId, device_id: deviceId, call_id: "", application: "m.call" }),
      ]);
      await sdkSees(danClient, channel.matrix_room_id, [`${dan.userId}|${deviceId}`]);
      expect(await session.leaveRoomSession(10000)).toBe(true);
      expect((await inbox.nextOfType("call.updated", 20000)).call).toMatchObject({ active: false, participant_count: 0 });
    } finally {
      danClient.stopClient();
      inbox.close();
    }
  });

  test("a legacy 1:1 call from Element: invite rings, the answer makes it active, the hangup ends it", async () => {
    const { channel, inbox } = await channelWithElementUsers("private");
    const callId = `call${Date.now()}`;
    const sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
    await bobClient.sendEvent(channel.matrix_room_id, "m.call.invite" as never, { call_id: callId, party_id: "bob1", version: "1", lifetime: 60000, offer: { type: "offer", sdp }, invitee: carol.userId } as never);
    const ringing = (await inbox.nextOfType("call.updated", 20000)).call;
    expect(ringing.legacy_calls[0]).toMatchObject({ call_id: callId, state: "ringing", caller_id: `matrix:${bob.userId}`, callee_id: `matrix:${carol.userId}`, is_video: true });
    expect(ringing).toMatchObject({ active: true, participant_count: 1 });
    await carolClient.sendEvent(channel.matrix_room_id, "m.call.answer" as never, { call_id: callId, party_id: "carol1", version: "1", answer: { type: "answer", sdp: "v=0\r\n" } } as never);
    const active = (await inbox.nextOfType("call.updated", 20000)).call;
    expect(active).toMatchObject({ active: true, participant_count: 2, member_ids: [`matrix:${bob.userId}`, `matrix:${carol.userId}`] });
    expect(active.legacy_calls[0]).toMatchObject({ state: "active", answered_at: expect.any(String) });
    await carolClient.sendEvent(channel.matrix_room_id, "m.call.hangup" as never, { call_id: callId, party_id: "carol1", version: "1", reason: "user_hangup" } as never);
    const ended = (await inbox.nextOfType("call.updated", 20000)).call;
    expect(ended).toMatchObject({ active: false, participant_count: 0 });
    expect(ended.legacy_calls[0]).toMatchObject({ call_id: callId, state: "ended", end_reason: "user_hangup" });
    inbox.close();
    expect((await (await api(`/channels/${channel.id}/call`, { as: "user:admin" })).json()).legacy_calls[0].state).toBe("ended");
    expect(callEvents(channel.id).map((e) => e.legacy_calls[0].state)).toEqual(["ringing", "active", "ended"]);
  });

  test("GET /voip/turn: Synapse's TURN credentials for the caller's Matrix user, as an Element client gets its own", async () => {
    const res = await api("/voip/turn", { as: "user:alice" });
    expect(res.status).toBe(200);
    const turn = await res.json();
    const user = `@user-alice:${synapse!.serverName}`;
    expect(turn.username.slice(turn.username.indexOf(":") + 1)).toBe(user);
    const secret = turnSharedSecret(synapse!.registrationSecret);
    expect(turn.password).toBe(createHmac("sha1", secret).update(turn.username).digest("base64"));
    const own = await bobClient.turnServer();
    expect(turn.uris).toEqual(own.uris);
    expect(turn.uris).toEqual(SYNAPSE_TURN_URIS);
    expect(turn.ttl).toBe(own.ttl);
    expect(own.username.endsWith(`:${bob.userId}`)).toBe(true);
    expect((await api("/voip/turn")).status).toBe(401);
  });
});
