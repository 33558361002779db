import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
}, 60000);
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
});
