import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { MatrixGate } from "../helpers/gated-matrix.ts";

let server: TestServer;
const gate = new MatrixGate();
beforeAll(async () => {
  server = await startTestServer({}, { wrapMatrix: gate.wrap });
}, 60000);

/**
 * What a kill -9 mid-request leaves: what the request made is there, but its key's record is
 * still 'running', owned by a process that no longer beats (and, so the old 15-second rule
 * would take it over too, claimed long ago).
 */
async function abandonedByDeadProcess(key: string, claimedAgo = "1 minute") {
  const rows = await server.app.deps.sql`
    update idempotency_keys set state = 'running', status = null, response = null, owner = 'a-process-killed-with-9',
      created_at = now() - ${claimedAgo}::interval
    where scope like ${"% " + key} returning scope`;
  expect(rows.length).toBe(1);
}
afterAll(() => server?.stop(), 60000);

describe("Idempotency-Key", () => {
  test("a retried send with the same key and body returns the original message and creates nothing", async () => {
    const channel = await createChannel(server, "user:admin");
    const send = (text: string, key: string) =>
      server.api(`/api/messaging/channels/${channel.id}/messages`, {
        method: "POST",
        as: "user:admin",
        headers: { "idempotency-key": key },
        json: { text },
      });
    const first = await send("exactly once", "key-1");
    expect(first.status).toBe(201);
    const original = await first.json();
    const retry = await send("exactly once", "key-1");
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await retry.json()).toEqual(original);
    const rows = await server.app.deps.sql`select id from messages where channel_id = ${channel.id}`;
    expect(rows.map((r) => r.id)).toEqual([original.id]);
    const [events] = await server.app.deps.sql`select count(*)::int as n from local_matrix_events where room_id = ${channel.matrix_room_id} and type = 'm.room.message'`;
    expect(events!.n).toBe(1);

    const reused = await send("something else", "key-1");
    expect(reused.status).toBe(422);
    expect((await reused.json()).error).toBe("IDEMPOTENCY_KEY_REUSED");

    // Another key is another request; the same key from another caller is theirs alone.
    expect((await send("exactly once", "key-2")).status).toBe(201);
    const other = await server.api(`/api/messaging/channels/${channel.id}/messages`, {
      method: "POST",
      as: "user:alice",
      headers: { "idempotency-key": "key-1" },
      json: { text: "exactly once" },
    });
    expect(other.status).toBe(201);
    expect((await other.json()).id).not.toBe(original.id);
  });

  test("a rerun after a crash lost the first answer finds the same message instead of making another", async () => {
    const channel = await createChannel(server, "user:admin");
    const send = () =>
      server.api(`/api/messaging/channels/${channel.id}/messages`, {
        method: "POST",
        as: "user:admin",
        headers: { "idempotency-key": "crash-1" },
        json: { text: "survives a crash" },
      });
    const first = await (await send()).json();
    // What a crash leaves: the message is there, but the key's record is abandoned mid-run.
    await server.app.deps.sql`
      update idempotency_keys set state = 'running', status = null, response = null, created_at = now() - interval '1 minute'
      where scope like ${"% crash-1"}`;
    const rerun = await send();
    expect(rerun.status).toBe(201);
    expect((await rerun.json()).id).toBe(first.id);
    const rows = await server.app.deps.sql`select id from messages where channel_id = ${channel.id}`;
    expect(rows.map((r) => r.id)).toEqual([first.id]);
  });

  test("channel creation is idempotent too", async () => {
    const body = { slug: `idem-${Date.now().toString(36)}`, name: "Idem", microdao_id: "microdao:daarion" };
    const create = () =>
      server.api("/api/messaging/channels", { method: "POST", as: "user:admin", headers: { "idempotency-key": "create-1" }, json: body });
    const a = await create();
    const b = await create();
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect((await b.json()).id).toBe((await a.json()).id);
    const [count] = await server.app.deps.sql`select count(*)::int as n from channels where slug = ${body.slug}`;
    expect(count!.n).toBe(1);
  });

  test("a failed request is forgotten, so its retry runs again; a malformed key is 400", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "private" });
    const attempt = () =>
      server.api(`/api/messaging/channels/${channel.id}/messages`, {
        method: "POST",
        as: "user:outsider",
        headers: { "idempotency-key": "fail-1" },
        json: { text: "x" },
      });
    expect((await attempt()).status).toBe(404);
    const [kept] = await server.app.deps.sql`select count(*)::int as n from idempotency_keys where scope like '%fail-1'`;
    expect(kept!.n).toBe(0);
    expect((await attempt()).status).toBe(404);
    const bad = await server.api(`/api/messaging/channels/${channel.id}/messages`, {
      method: "POST",
      as: "user:admin",
      headers: { "idempotency-key": "bad key with spaces" },
      json: { text: "x" },
    });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toBe("INVALID_IDEMPOTENCY_KEY");
  });

  test("an agent post rerun after a crash finds the first post instead of posting again", async () => {
    const channel = await createChannel(server, "user:admin");
    const invited = await server.api(`/api/messaging/channels/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "agent:sofia" } });
    expect(invited.status).toBe(201);
    const post = () =>
      server.api("/internal/agents/sofia/post-to-channel", {
        method: "POST",
        headers: { "idempotency-key": "agent-crash-1" },
        json: { channel_id: channel.id, text: "posted once" },
      });
    const first = await post();
    expect(first.status).toBe(200);
    const { message_id } = await first.json();
    await abandonedByDeadProcess("agent-crash-1");
    const rerun = await post();
    expect(rerun.status).toBe(200);
    expect(rerun.headers.get("idempotent-replayed")).toBeNull();
    expect((await rerun.json()).message_id).toBe(message_id);
    const rows = await server.app.deps.sql`select id from messages where channel_id = ${channel.id}`;
    expect(rows.map((r) => r.id)).toEqual([message_id]);
    const [events] = await server.app.deps.sql`select count(*)::int as n from local_matrix_events where room_id = ${channel.matrix_room_id} and type = 'm.room.message'`;
    expect(events!.n).toBe(1);
  });

  const upload = (channelId: string, key: string, bytes: string, name = "notes.txt") => {
    const form = new FormData();
    form.append("file", new File([bytes], name, { type: "text/plain" }));
    return server.api(`/api/messaging/channels/${channelId}/files`, { method: "POST", as: "user:admin", headers: { "idempotency-key": key }, body: form });
  };

  test("an upload's key covers the file's bytes: the same file is replayed, another of the same size and type is 422", async () => {
    const channel = await createChannel(server, "user:admin");
    const first = await upload(channel.id, "upload-1", "first file");
    expect(first.status).toBe(201);
    const original = await first.json();
    const same = await upload(channel.id, "upload-1", "first file");
    expect(same.status).toBe(201);
    expect(same.headers.get("idempotent-replayed")).toBe("true");
    expect((await same.json()).id).toBe(original.id);
    const other = await upload(channel.id, "upload-1", "other file");
    expect(other.status).toBe(422);
    expect((await other.json()).error).toBe("IDEMPOTENCY_KEY_REUSED");
    const rows = await server.app.deps.sql`select id from messages where channel_id = ${channel.id}`;
    expect(rows.map((r) => r.id)).toEqual([original.id]);
  });

  test("an upload rerun after a crash finds the first upload's message and file", async () => {
    const channel = await createChannel(server, "user:admin");
    const first = await (await upload(channel.id, "upload-crash-1", "survives a crash")).json();
    await abandonedByDeadProcess("upload-crash-1");
    const [mediaBefore] = await server.app.deps.sql`select count(*)::int as n from local_matrix_media`;
    const rerun = await upload(channel.id, "upload-crash-1", "survives a crash");
    expect(rerun.status).toBe(201);
    const again = await rerun.json();
    expect(again.id).toBe(first.id);
    expect(again.media.url).toBe(first.media.url);
    const rows = await server.app.deps.sql`select id from messages where channel_id = ${channel.id}`;
    expect(rows.map((r) => r.id)).toEqual([first.id]);
    const [mediaAfter] = await server.app.deps.sql`select count(*)::int as n from local_matrix_media`;
    expect(mediaAfter!.n).toBe(mediaBefore!.n);
    const [events] = await server.app.deps.sql`select count(*)::int as n from local_matrix_events where room_id = ${channel.matrix_room_id} and type = 'm.room.message'`;
    expect(events!.n).toBe(1);
  });

  test("an invite rerun after a crash answers the member the first attempt made, not 409", async () => {
    const channel = await createChannel(server, "user:admin");
    const invite = () =>
      server.api(`/api/messaging/channels/${channel.id}/members`, {
        method: "POST",
        as: "user:admin",
        headers: { "idempotency-key": "invite-crash-1" },
        json: { member_id: "user:carol", role: "member" },
      });
    const first = await invite();
    expect(first.status).toBe(201);
    const member = await first.json();
    await abandonedByDeadProcess("invite-crash-1");
    const rerun = await invite();
    expect(rerun.status).toBe(201);
    expect(await rerun.json()).toEqual(member);
  });

  test("a Matrix user's invite rerun after a crash answers the pending invitation, with one audit row and one event", async () => {
    const channel = await createChannel(server, "user:admin");
    const invite = () =>
      server.api(`/api/messaging/channels/${channel.id}/members`, {
        method: "POST",
        as: "user:admin",
        headers: { "idempotency-key": "invite-crash-matrix" },
        json: { member_id: "matrix:@dora:elsewhere.example", role: "member" },
      });
    const first = await invite();
    expect(first.status).toBe(202);
    const pending = await first.json();
    await abandonedByDeadProcess("invite-crash-matrix");
    const rerun = await invite();
    expect(rerun.status).toBe(202);
    expect(await rerun.json()).toEqual(pending);
    const audit = await server.app.deps.sql`
      select count(*)::int as n from channel_events
      where channel_id = ${channel.id} and event_type = 'member.invited' and target_id = 'matrix:@dora:elsewhere.example'`;
    expect(audit[0]!.n).toBe(1);
  });

  test("a claim whose owner is alive stays 409 however long it runs; a dead owner's claim is taken over at once", async () => {
    const channel = await createChannel(server, "user:admin");
    const send = (key: string) =>
      server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", headers: { "idempotency-key": key }, json: { text: "slow" } });
    gate.hold();
    const arrived = gate.arrived(gate.sends + 1);
    const slow = send("slow-1");
    await arrived;
    let retry;
    try {
    // As if it had been running for a minute: its owner (this process) is alive, so no takeover.
    await server.app.deps.sql`update idempotency_keys set created_at = now() - interval '1 minute' where scope like '% slow-1'`;
      // (The old rule took it over: the rerun waited on the held send and answered 202 after 5 s.)
      retry = await Promise.race([send("slow-1"), Bun.sleep(4000).then(() => null)]);
    } finally {
      gate.release();
    }
    expect(retry?.status).toBe(409);
    expect((await retry!.json()).error).toBe("IDEMPOTENCY_IN_PROGRESS");
    const done = await slow;
    expect(done.status).toBe(201);
    const message = await done.json();

    // Left by a process that died a moment ago: taken over now, not 15 seconds later.
    await abandonedByDeadProcess("slow-1", "0 seconds");
    const takeover = await send("slow-1");
    expect(takeover.status).toBe(201);
    expect(takeover.headers.get("idempotent-replayed")).toBeNull();
    expect((await takeover.json()).id).toBe(message.id);
    const rows = await server.app.deps.sql`select id from messages where channel_id = ${channel.id}`;
    expect(rows.map((r) => r.id)).toEqual([message.id]);
    // This process's own heartbeat is what keeps its claims.
    const [beat] = await server.app.deps.sql`select count(*)::int as n from idempotency_owners where seen_at > now() - interval '6 seconds'`;
    expect(beat!.n).toBeGreaterThan(0);
  });
});
