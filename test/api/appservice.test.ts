import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { answerWithin, openBody } from "../helpers/open-body.ts";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const HS_TOKEN = "hs-token-for-tests-0123456789";
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ MATRIX_HS_TOKEN: HS_TOKEN, MATRIX_EVENTS_MODE: "push" });
}, 60000);
afterAll(() => server?.stop(), 60000);

const push = (txnId: string, events: unknown[], token: string | null = HS_TOKEN) =>
  fetch(`${server.url}/_matrix/app/v1/transactions/${txnId}`, {
    method: "PUT",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ events }),
  });

function messageEvent(roomId: string, body: string) {
  return {
    event_id: `$${crypto.randomUUID()}`,
    room_id: roomId,
    sender: "@carol:elsewhere.example",
    type: "m.room.message",
    content: { msgtype: "m.text", body },
    origin_server_ts: Date.now(),
  };
}

describe("application-service push (as the homeserver calls it)", () => {
  test("a missing token is 401 M_UNAUTHORIZED, a wrong one 403 M_FORBIDDEN, and nothing is stored", async () => {
    const channel = await createChannel(server, "user:admin");
    const none = await push("t-none", [messageEvent(channel.matrix_room_id, "x")], null);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ errcode: "M_UNAUTHORIZED" });
    const wrong = await push("t-wrong", [messageEvent(channel.matrix_room_id, "x")], "not-the-token");
    expect(wrong.status).toBe(403);
    expect(await wrong.json()).toMatchObject({ errcode: "M_FORBIDDEN" });
    const [stored] = await server.app.deps.sql`select count(*)::int as n from matrix_push_transactions`;
    expect(stored!.n).toBe(0);
  });

  test("the token is checked before the body is read: 401/403 whatever the body, even one that never ends", async () => {
    const channel = await createChannel(server, "user:admin");
    const put = (txnId: string, token: string | null, init: { body: string | ReadableStream<Uint8Array>; headers?: Record<string, string> }) =>
      fetch(`${server.url}/_matrix/app/v1/transactions/${txnId}`, {
        method: "PUT",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...init.headers },
        body: init.body,
        duplex: "half",
      } as RequestInit);
    const invalid = '{"events":[{"type":"m.room.message"}]}';
    for (const [token, status, errcode] of [[null, 401, "M_UNAUTHORIZED"], ["not-the-token", 403, "M_FORBIDDEN"]] as const) {
      // A schema-violating body, broken JSON, and a declared length past the 32 MiB push limit: never looked at.
      for (const body of [invalid, "{broken", JSON.stringify({ events: [messageEvent(channel.matrix_room_id, "x")] })]) {
        const res = await put(`t-${status}`, token, { body });
        expect({ status: res.status, body: await res.json() }).toEqual({ status, body: { errcode, error: expect.any(String), request_id: expect.any(String) } });
      }
      const huge = await fetch(`${server.url}/_matrix/app/v1/transactions/t-huge-${status}`, {
        method: "PUT",
        headers: { "content-type": "application/json", "content-length": String(64 * 1024 * 1024), ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: openBody(['{"events":[']).body,
        duplex: "half",
      } as RequestInit).catch((err: unknown) => err);
      expect(huge instanceof Response ? huge.status : String(huge)).toBe(status);
      const open = openBody(['{"events":[', JSON.stringify(messageEvent(channel.matrix_room_id, "x"))]);
      try {
        const res = await answerWithin(put(`t-open-${status}`, token, { body: open.body }), 5000);
        expect({ status: res.status, body: await res.json() }).toEqual({ status, body: { errcode, error: expect.any(String), request_id: expect.any(String) } });
      } finally {
        open.close();
      }
    }
    const [stored] = await server.app.deps.sql`select count(*)::int as n from matrix_push_transactions`;
    expect(stored!.n).toBe(0);
  });

  test("a transaction is durable when answered 200, indexed once, and pushed on the WebSocket", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    const event = messageEvent(channel.matrix_room_id, "pushed hello");
    const res = await push("txn-1", [event]);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    // Durable at the moment of the 200: the transaction is recorded with its events.
    const [txn] = await server.app.deps.sql`select event_count from matrix_push_transactions where txn_id = 'txn-1'`;
    expect(txn!.event_count).toBe(1);

    const frame = await inbox.nextJson();
    expect(frame).toMatchObject({
      type: "message.created",
      seq: 1,
      message: { matrix_event_id: event.event_id, sender_id: "matrix:@carol:elsewhere.example", content_preview: "pushed hello" },
    });

    // The homeserver retries the same transaction: a no-op. A new transaction repeating the
    // event (it happens after a restart) is not indexed twice either.
    expect((await push("txn-1", [event])).status).toBe(200);
    expect((await push("txn-2", [event, messageEvent(channel.matrix_room_id, "second")])).status).toBe(200);
    const frame2 = await inbox.nextJson();
    expect(frame2.message.content_preview).toBe("second");
    const rows = await server.app.deps.sql`select content_preview from messages where channel_id = ${channel.id} order by seq`;
    expect(rows.map((r) => r.content_preview)).toEqual(["pushed hello", "second"]);
    inbox.close();
  });

  test("malformed transactions are refused with 400 and store nothing", async () => {
    const res = await fetch(`${server.url}/_matrix/app/v1/transactions/bad-1`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${HS_TOKEN}` },
      body: JSON.stringify({ events: [{ type: "m.room.message" }] }),
    });
    expect(res.status).toBe(400);
    const [stored] = await server.app.deps.sql`select count(*)::int as n from matrix_push_transactions where txn_id = 'bad-1'`;
    expect(stored!.n).toBe(0);
  });

  test("push mode runs no sync poller", async () => {
    const health = await (await server.api("/health")).json();
    expect(health.live.sync_poller ?? 0).toBe(0);
  });
});

describe("push across a restart", () => {
  test("a transaction the homeserver retries after the service restarted is still a no-op", async () => {
    const dir = mkdtempSync(join(tmpdir(), "daarion-push-"));
    const fresh = databaseUrl ? await freshPostgresDatabase("daarion_push") : null;
    const env = { MATRIX_HS_TOKEN: HS_TOKEN, MATRIX_EVENTS_MODE: "push", ...(fresh ? { DATABASE_URL: fresh.url } : { DATA_DIR: dir }) };
    let first = await startTestServer(env);
    try {
      const channel = await createChannel(first, "user:admin");
      const event = messageEvent(channel.matrix_room_id, "once only");
      const send = (srv: TestServer) =>
        fetch(`${srv.url}/_matrix/app/v1/transactions/restart-txn`, {
          method: "PUT",
          headers: { "content-type": "application/json", authorization: `Bearer ${HS_TOKEN}` },
          body: JSON.stringify({ events: [event] }),
        });
      expect((await send(first)).status).toBe(200);
      await first.stop();
      first = await startTestServer(env);
      expect((await send(first)).status).toBe(200);
      const rows = await first.app.deps.sql`select content_preview from messages where channel_id = ${channel.id}`;
      expect(rows.map((r) => r.content_preview)).toEqual(["once only"]);
      const [txns] = await first.app.deps.sql`select count(*)::int as n from matrix_push_transactions where txn_id = 'restart-txn'`;
      expect(txns!.n).toBe(1);
    } finally {
      await first.stop();
      await fresh?.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60000);
});
