import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { reconcile } from "../../src/features/reconcile/reconcile.ts";

/** Reconciliation against a real Synapse: the room's timeline as the sync user reads it with /messages. */
setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("reconcile (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
  }, 120_000);

  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60_000);

  /** The next frame that is not about membership. */
  async function nextFrame(inbox: WsInbox): Promise<any> {
    for (;;) {
      const frame = await inbox.nextJson(20_000);
      if (frame.type !== "member.joined") return frame;
    }
  }

  async function timelineIds(roomId: string): Promise<string[]> {
    const ids: string[] = [];
    let from: string | null = null;
    for (let page = 0; page < 50; page++) {
      const { events, end } = await server.app.deps.matrix.roomMessages(roomId, { from, dir: "b", limit: 50 });
      ids.push(...events.map((e) => e.event_id));
      if (!end) break;
      from = end;
    }
    return ids;
  }

  test("finds an Element message the index lost and rows whose events are gone or redacted; fix repairs the index only", async () => {
    const { deps } = server.app;
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "from the API" } });
    expect(res.status).toBe(201);
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.created", message: { content_preview: "from the API" } });

    const { event_id: fromElement } = await client.sendTextMessage(channel.matrix_room_id, "from Element");
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.created", message: { matrix_event_id: fromElement } });
    const { event_id: toRedact } = await client.sendTextMessage(channel.matrix_room_id, "soon redacted");
    const redactedFrame = await nextFrame(inbox);
    expect(redactedFrame).toMatchObject({ type: "message.created", message: { matrix_event_id: toRedact } });
    await client.redactEvent(channel.matrix_room_id, toRedact);
    expect(await nextFrame(inbox)).toMatchObject({ type: "message.deleted", message_id: redactedFrame.message.id });

    // Diverge: the Element message's row is lost, the redacted one is visible again, and a row
    // points at an event the room never had.
    await deps.sql`delete from messages where matrix_event_id = ${fromElement}`;
    await deps.sql`update messages set deleted_at = null, content_preview = 'soon redacted' where id = ${redactedFrame.message.id}`;
    const ghostId = Bun.randomUUIDv7();
    await deps.sql`
      insert into messages (id, channel_id, seq, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id, content_preview, content_type, msgtype, delivery_state)
      values (${ghostId}, ${channel.id}, 1000000, ${"$reconcile-ghost-" + Date.now()}, 'm.room.message', 'user:admin', 'human', 'x', 'ghost', 'text', 'm.text', 'sent')`;

    const report = await reconcile(deps, { channelId: channel.id, fix: false });
    expect(report.summary).toEqual({ channels: 1, missing: 1, extra: 2, fixed: 0 });
    expect(report.channels[0]!.missing.map((m) => [m.event_id, m.sender])).toEqual([[fromElement, bob.userId]]);
    expect(report.channels[0]!.extra.map((e) => [e.message_id, e.reason]).sort()).toEqual(
      [
        [ghostId, "absent"],
        [redactedFrame.message.id, "redacted"],
      ].sort(),
    );
    expect(await deps.sql`select 1 from messages where matrix_event_id = ${fromElement}`).toHaveLength(0);

    const timelineBefore = await timelineIds(channel.matrix_room_id);
    const fixed = await reconcile(deps, { channelId: channel.id, fix: true });
    expect(fixed.summary).toEqual({ channels: 1, missing: 1, extra: 2, fixed: 3 });
    const back = await nextFrame(inbox);
    expect(back).toMatchObject({ type: "message.created", message: { matrix_event_id: fromElement, sender_id: `matrix:${bob.userId}`, content_preview: "from Element" } });
    const deletions = [await nextFrame(inbox), await nextFrame(inbox)];
    inbox.close();
    expect(deletions.map((f) => [f.type, f.message_id]).sort()).toEqual(
      [
        ["message.deleted", ghostId],
        ["message.deleted", redactedFrame.message.id],
      ].sort(),
    );
    const rows = await deps.sql`select deleted_at from messages where id in (${ghostId}, ${redactedFrame.message.id})`;
    expect(rows.every((r) => r.deleted_at instanceof Date)).toBe(true);
    expect(await deps.sql`select 1 from messages where matrix_event_id = ${fromElement}`).toHaveLength(1);
    // Reconciliation repairs the index; it never writes to the room.
    expect(await timelineIds(channel.matrix_room_id)).toEqual(timelineBefore);

    expect((await reconcile(deps, { channelId: channel.id, fix: false })).summary).toEqual({ channels: 1, missing: 0, extra: 0, fixed: 0 });
  });
});
