import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";
import { rtcMembership } from "../helpers/call-membership.ts";

// The embedded default: the local Matrix backend, written to as a Matrix client would (Element's
// side of these rooms is test/e2e/calls.test.ts, on Synapse with matrix-js-sdk).
let server: TestServer;
const published: PublishedEvent[] = [];
beforeAll(async () => {
  server = await startTestServer();
  server.app.deps.events.subscribe((e) => published.push(e));
}, 60000);
afterAll(() => server?.stop(), 60000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging${path}`, init);
const MEMBER = "org.matrix.msc3401.call.member";

/** A Matrix user outside DAARION, joined to the room on the local backend. */
async function matrixUser(roomId: string, localpart: string) {
  const userId = `@${localpart}${Date.now().toString(36)}:daarion.city`;
  const { matrix } = server.app.deps;
  await matrix.ensureUser(userId);
  await matrix.join(roomId, userId);
  return {
    userId,
    state: (type: string, stateKey: string, content: Record<string, unknown>) => matrix.sendState(roomId, userId, type, stateKey, content),
    send: (type: string, content: Record<string, unknown>) => matrix.sendEvent(roomId, userId, type, content, crypto.randomUUID()),
  };
}


const callOf = async (channelId: string, as = "user:owner") => {
  const res = await api(`/channels/${channelId}/call`, { as });
  expect(res.status).toBe(200);
  return res.json();
};

const callEvents = (channelId: string) => published.filter((e) => e.subject === "messaging.call.updated" && (e.payload as any).channel_id === channelId).map((e) => e.payload as any);

describe("calls from MatrixRTC membership state", () => {
  test("a device joins, a second member joins, the first leaves: frames, NATS, GET …/call", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    expect(await callOf(channel.id)).toMatchObject({ active: false, participant_count: 0, member_ids: [], participants: [], legacy_calls: [], since: null });

    const carol = await matrixUser(channel.matrix_room_id, "carol");
    const carolKey = `_${carol.userId}_PHONE_m.call`;
    const joined = await carol.state(MEMBER, carolKey, rtcMembership("PHONE"));
    const first = await inbox.nextOfType("call.updated");
    expect(first.call).toMatchObject({
      channel_id: channel.id,
      active: true,
      participant_count: 1,
      member_ids: [`matrix:${carol.userId}`],
      participants: [{ member_id: `matrix:${carol.userId}`, matrix_user_id: carol.userId, device_id: "PHONE", call_id: "", application: "m.call" }],
      matrix_room_id: channel.matrix_room_id,
      join_url: `https://matrix.to/#/${encodeURIComponent(channel.matrix_alias)}`,
      matrix_uri: `matrix:r/${encodeURIComponent(channel.matrix_alias.slice(1))}`,
    });
    expect(typeof first.seq).toBe("number");
    // No created_ts: the member is in since the event; it counts for `expires` from then.
    const since = Date.parse(first.call.since);
    expect(Date.parse(first.call.participants[0].expires_at) - since).toBe(14_400_000);
    expect((await callOf(channel.id, "user:passer-by")).participants).toEqual(first.call.participants);
    const [row] = await server.app.deps.sql`select matrix_event_id from call_memberships where channel_id = ${channel.id}`;
    expect(row!.matrix_event_id).toBe(joined.eventId);

    // A DAARION user's Matrix account (the namespace) maps back to the member id, on two devices.
    const alice = "@user-alice:daarion.city";
    await server.app.deps.matrix.ensureUser(alice);
    await server.app.deps.matrix.join(channel.matrix_room_id, alice);
    for (const device of ["LAPTOP", "TABLET"]) {
      await server.app.deps.matrix.sendState(channel.matrix_room_id, alice, MEMBER, `_${alice}_${device}_m.call`, rtcMembership(device));
    }
    expect((await inbox.nextOfType("call.updated")).call.participants).toHaveLength(2);
    const both = (await inbox.nextOfType("call.updated")).call;
    expect(both).toMatchObject({ participant_count: 2, member_ids: [`matrix:${carol.userId}`, "user:alice"] });
    expect(both.participants.map((p: { device_id: string }) => p.device_id)).toEqual(["PHONE", "LAPTOP", "TABLET"]);

    // Leaving empties the slot's content.
    await carol.state(MEMBER, carolKey, {});
    const left = (await inbox.nextOfType("call.updated")).call;
    expect(left).toMatchObject({ active: true, participant_count: 1, member_ids: ["user:alice"] });
    for (const device of ["LAPTOP", "TABLET"]) await server.app.deps.matrix.sendState(channel.matrix_room_id, alice, MEMBER, `_${alice}_${device}_m.call`, {});
    await inbox.nextOfType("call.updated");
    expect((await inbox.nextOfType("call.updated")).call).toMatchObject({ active: false, participant_count: 0, participants: [], since: null });
    inbox.close();
    expect(await callOf(channel.id)).toMatchObject({ active: false, participant_count: 0 });

    const events = callEvents(channel.id);
    expect(events.map((e) => e.participant_count)).toEqual([1, 2, 2, 1, 1, 0]);
    expect(events[1]).toMatchObject({ microdao_id: "microdao:daarion", active: true, member_ids: [`matrix:${carol.userId}`, "user:alice"], legacy_calls: [] });
    expect(typeof events[0].event_id).toBe("string");
    expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
    // The service never writes call state: every call-member event in the room is a client's.
    const writers = await server.app.deps.sql`
      select distinct sender from local_matrix_events where room_id = ${channel.matrix_room_id} and type = ${MEMBER} order by sender`;
    expect(writers.map((w) => w.sender)).toEqual([carol.userId, alice].sort());
  });

  test("the per-user shape (memberships: [...]): expired memberships do not count, created_ts is the join time", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const dave = await matrixUser(channel.matrix_room_id, "dave");
    const joinedAt = Date.now() - 60_000;
    await dave.state(MEMBER, dave.userId, {
      memberships: [
        { application: "m.call", call_id: "", device_id: "OLD", created_ts: Date.now() - 7_200_000, expires: 3_600_000 },
        { application: "m.call", call_id: "", device_id: "GONE", expires_ts: Date.now() - 1000 },
        { application: "m.call", call_id: "", device_id: "NOW", created_ts: joinedAt, expires: 3_600_000 },
        { application: "m.call", device_id: "NO-CALL-ID" },
      ],
    });
    const call = (await inbox.nextOfType("call.updated")).call;
    expect(call).toMatchObject({ active: true, participant_count: 1, since: new Date(joinedAt).toISOString() });
    expect(call.participants).toEqual([
      {
        member_id: `matrix:${dave.userId}`,
        matrix_user_id: dave.userId,
        device_id: "NOW",
        call_id: "",
        application: "m.call",
        since: new Date(joinedAt).toISOString(),
        expires_at: new Date(joinedAt + 3_600_000).toISOString(),
      },
    ]);
    await dave.state(MEMBER, dave.userId, { memberships: [] });
    expect((await inbox.nextOfType("call.updated")).call).toMatchObject({ active: false, participant_count: 0 });
    inbox.close();
  });

  test("a membership that runs out is announced by itself; a renewal that only moves the expiry is not", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const erin = await matrixUser(channel.matrix_room_id, "erin");
    const key = `_${erin.userId}_DESK_m.call`;
    const created = Date.now();
    await erin.state(MEMBER, key, rtcMembership("DESK", { created_ts: created, expires: 600_000 }));
    expect((await inbox.nextOfType("call.updated")).call.participant_count).toBe(1);
    // The client renews (same created_ts, later expiry): nothing visible changed, no frame.
    await erin.state(MEMBER, key, rtcMembership("DESK", { created_ts: created, expires: 1_200_000 }));
    // Then lets it run out 1.5 s from now (as a client that crashed would): the timer announces it.
    await erin.state(MEMBER, key, rtcMembership("DESK", { created_ts: created, expires: Date.now() - created + 1500 }));
    const expired = await inbox.nextOfType("call.updated", 10_000);
    expect(expired.call).toMatchObject({ active: false, participant_count: 0, participants: [] });
    expect(Date.now()).toBeGreaterThanOrEqual(created + 1500);
    expect(inbox.pending).toEqual([]);
    inbox.close();
    expect(await callOf(channel.id)).toMatchObject({ active: false, participant_count: 0 });
    // The row is still there (Matrix still holds the state); it just no longer counts.
    const [row] = await server.app.deps.sql`select count(*)::int as n from call_memberships where channel_id = ${channel.id}`;
    expect(row!.n).toBe(1);
  });
});

describe("calls across a restart", () => {
  test("after a restart, the first GET …/call sets the expiry timer again: the membership's end is still announced", async () => {
    const dir = mkdtempSync(join(tmpdir(), "daarion-calls-"));
    const fresh = databaseUrl ? await freshPostgresDatabase("daarion_calls") : null;
    const env: Record<string, string> = fresh ? { DATABASE_URL: fresh.url } : { DATA_DIR: dir };
    let first: TestServer | null = await startTestServer(env);
    let second: TestServer | null = null;
    try {
      const channel = await createChannel(first, "user:owner", { visibility: "public" });
      const user = `@ivan${Date.now().toString(36)}:daarion.city`;
      await first.app.deps.matrix.ensureUser(user);
      await first.app.deps.matrix.join(channel.matrix_room_id, user);
      const inbox = await WsInbox.open(`${first.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
      const created = Date.now();
      await first.app.deps.matrix.sendState(channel.matrix_room_id, user, MEMBER, `_${user}_DESK_m.call`, rtcMembership("DESK", { created_ts: created, expires: 6000 }));
      expect((await inbox.nextOfType("call.updated")).call.participant_count).toBe(1);
      inbox.close();
      await first.stop();
      first = null;

      second = await startTestServer(env);
      const live = await WsInbox.open(`${second.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
      const res = await second.api(`/api/messaging/channels/${channel.id}/call`, { as: "user:owner" });
      expect((await res.json()).participant_count).toBe(1);
      // Nothing changed while the service was down, so nothing is announced until the expiry.
      const expired = await live.nextOfType("call.updated", 15_000);
      expect(expired.call).toMatchObject({ active: false, participant_count: 0 });
      expect(Date.now()).toBeGreaterThanOrEqual(created + 6000);
      live.close();
    } finally {
      await first?.stop();
      await second?.stop();
      await fresh?.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe("legacy 1:1 calls (m.call.*)", () => {
  const offer = (video: boolean) => ({ type: "offer", sdp: `v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n${video ? "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" : ""}` });

  test("invite rings, answer makes it active with both parties, hangup ends it", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const frank = await matrixUser(channel.matrix_room_id, "frank");
    const grace = await matrixUser(channel.matrix_room_id, "grace");
    const callId = `c${Date.now()}`;
    await frank.send("m.call.invite", { call_id: callId, party_id: "f1", version: "1", lifetime: 60000, offer: offer(true), invitee: grace.userId });
    const ringing = (await inbox.nextOfType("call.updated")).call;
    expect(ringing).toMatchObject({ active: true, participant_count: 1, member_ids: [`matrix:${frank.userId}`], participants: [] });
    expect(ringing.legacy_calls).toEqual([
      expect.objectContaining({ call_id: callId, state: "ringing", caller_id: `matrix:${frank.userId}`, callee_id: `matrix:${grace.userId}`, is_video: true, answered_at: null, ended_at: null, end_reason: null }),
    ]);
    await grace.send("m.call.candidates", { call_id: callId, party_id: "g1", version: "1", candidates: [] });
    await grace.send("m.call.answer", { call_id: callId, party_id: "g1", version: "1", answer: { type: "answer", sdp: "v=0\r\n" } });
    const active = (await inbox.nextOfType("call.updated")).call;
    expect(active).toMatchObject({ active: true, participant_count: 2, member_ids: [`matrix:${frank.userId}`, `matrix:${grace.userId}`] });
    expect(active.legacy_calls[0]).toMatchObject({ state: "active", callee_id: `matrix:${grace.userId}` });
    expect(active.legacy_calls[0].since).toBe(active.legacy_calls[0].answered_at);
    await frank.send("m.call.hangup", { call_id: callId, party_id: "f1", version: "1", reason: "user_hangup" });
    const ended = (await inbox.nextOfType("call.updated")).call;
    expect(ended).toMatchObject({ active: false, participant_count: 0 });
    expect(ended.legacy_calls[0]).toMatchObject({ call_id: callId, state: "ended", end_reason: "user_hangup" });
    expect(ended.legacy_calls[0].since).toBe(ended.legacy_calls[0].ended_at);
    // A second hangup (the other party's) changes nothing: no frame; the next one is the next call's.
    await grace.send("m.call.hangup", { call_id: callId, party_id: "g1", version: "1", reason: "user_hangup" });
    await grace.send("m.call.invite", { call_id: `${callId}-2`, party_id: "g1", version: "1", lifetime: 60000, offer: offer(false) });
    const next = (await inbox.nextOfType("call.updated")).call;
    expect(next.legacy_calls.map((c: { call_id: string; state: string }) => [c.call_id, c.state])).toEqual([[`${callId}-2`, "ringing"], [callId, "ended"]]);
    expect(next.legacy_calls[0]).toMatchObject({ is_video: false, callee_id: null });
    await frank.send("m.call.reject", { call_id: `${callId}-2`, party_id: "f1", version: "1" });
    expect((await inbox.nextOfType("call.updated")).call.legacy_calls[0]).toMatchObject({ state: "ended", end_reason: "rejected" });
    inbox.close();
    const events = callEvents(channel.id);
    expect(events.map((e) => e.legacy_calls[0]?.state)).toEqual(["ringing", "active", "ended", "ringing", "ended"]);
    expect(events[1].legacy_calls[0]).toEqual({ call_id: callId, state: "active", caller_id: `matrix:${frank.userId}`, callee_id: `matrix:${grace.userId}` });
  });

  test("an invite nobody answers within its lifetime ends by itself (invite_timeout)", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const heidi = await matrixUser(channel.matrix_room_id, "heidi");
    await heidi.send("m.call.invite", { call_id: "short", party_id: "h1", version: "1", lifetime: 1500, offer: offer(false) });
    expect((await inbox.nextOfType("call.updated")).call.legacy_calls[0].state).toBe("ringing");
    const timedOut = (await inbox.nextOfType("call.updated", 10_000)).call;
    expect(timedOut).toMatchObject({ active: false, participant_count: 0 });
    expect(timedOut.legacy_calls[0]).toMatchObject({ call_id: "short", state: "ended", end_reason: "invite_timeout" });
    inbox.close();
    expect((await callOf(channel.id)).legacy_calls[0].state).toBe("ended");
  });
});

describe("GET …/call rights", () => {
  test("same read rights as the channel's messages: 404 to whoever may not read, 401 without identity", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "private" });
    expect((await api(`/channels/${channel.id}/call`, { as: "user:owner" })).status).toBe(200);
    const outsider = await api(`/channels/${channel.id}/call`, { as: "user:outsider" });
    expect(outsider.status).toBe(404);
    expect(await outsider.json()).toMatchObject({ error: "NOT_FOUND" });
    expect((await api(`/channels/${crypto.randomUUID()}/call`, { as: "user:owner" })).status).toBe(404);
    expect((await api(`/channels/not-a-uuid/call`, { as: "user:owner" })).status).toBe(400);
    const anonymous = await api(`/channels/${channel.id}/call`);
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).error).toBe("UNAUTHENTICATED");
  });
});

describe("GET /api/messaging/voip/turn", () => {
  test("no TURN server configured: 503 TURN_UNAVAILABLE; no identity: 401", async () => {
    const res = await api("/voip/turn", { as: "user:alice" });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("300");
    expect(await res.json()).toMatchObject({ error: "TURN_UNAVAILABLE", message: expect.any(String), request_id: expect.any(String) });
    expect((await api("/voip/turn")).status).toBe(401);
  });

  test("with TURN_URIS and TURN_SHARED_SECRET: the TURN REST credentials of the caller's Matrix user", async () => {
    const secret = "a-turn-shared-secret-for-tests";
    const turnServer = await startTestServer({ TURN_URIS: "turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349", TURN_SHARED_SECRET: secret, TURN_TTL_S: "600" });
    try {
      const before = Math.floor(Date.now() / 1000);
      const res = await turnServer.api("/api/messaging/voip/turn", { as: "agent:sofia" });
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body).toEqual({ username: expect.any(String), password: expect.any(String), uris: ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"], ttl: 600 });
      const [expiry, user] = [body.username.slice(0, body.username.indexOf(":")), body.username.slice(body.username.indexOf(":") + 1)];
      expect(user).toBe("@agent-sofia:daarion.city");
      expect(Number(expiry)).toBeGreaterThanOrEqual(before + 600);
      expect(Number(expiry)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 600);
      expect(body.password).toBe(createHmac("sha1", secret).update(body.username).digest("base64"));
    } finally {
      await turnServer.stop();
    }
  }, 30_000);
});
