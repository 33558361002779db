import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";
import { reconcile, UnknownChannelError, type ReconcileDeps } from "../../src/features/reconcile/reconcile.ts";
import { exitCodeFor } from "../../src/features/reconcile/report.ts";

setDefaultTimeout(60_000);
let server: TestServer;
let deps: ReconcileDeps;
const published: PublishedEvent[] = [];
beforeAll(async () => {
  server = await startTestServer();
  deps = server.app.deps;
  server.app.deps.events.subscribe((e) => published.push(e));
}, 60_000);
afterAll(() => server?.stop(), 60_000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
async function send(channelId: string, text: string, extra: Record<string, unknown> = {}) {
  const res = await api(`/${channelId}/messages`, { method: "POST", as: "user:owner", json: { text, ...extra } });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; seq: number; matrix_event_id: string };
}
const rowsOf = (channelId: string) =>
  deps.sql<{ id: string; seq: string; matrix_event_id: string; thread_id: string | null; content_preview: string; deleted_at: Date | null }[]>`
    select id, seq, matrix_event_id, thread_id, content_preview, deleted_at from messages where channel_id = ${channelId} order by seq`;

describe("reconcile (local backend)", () => {
  test("reports a deleted index row as missing and rows without a live Matrix event as extra; fix repairs them once", async () => {
    const channel = await createChannel(server, "user:owner");
    const root = await send(channel.id, "root");
    const reply = await send(channel.id, "a thread reply", { thread_id: root.id });
    const kept = await send(channel.id, "kept");
    const redacted = await send(channel.id, "redacted behind the index's back");
    // The index has never seen it: another channel's untouched messages must not show up either.
    const other = await createChannel(server, "user:owner");
    await send(other.id, "elsewhere");

    // Diverge: the reply's row is lost, a row points at an event the room never had, and a
    // message lost its content in Matrix without the index hearing of the redaction.
    await deps.sql`delete from messages where id = ${reply.id}`;
    const ghostId = Bun.randomUUIDv7();
    const ghostEvent = `$reconcile-ghost-${Date.now()}`;
    await deps.sql`
      insert into messages (id, channel_id, seq, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id, content_preview, content_type, msgtype, delivery_state)
      values (${ghostId}, ${channel.id}, 1000000, ${ghostEvent}, 'm.room.message', 'user:owner', 'human', '@user-owner:daarion.city', 'ghost', 'text', 'm.text', 'sent')`;
    await deps.sql`update local_matrix_events set content = '{}'::jsonb where event_id = ${redacted.matrix_event_id}`;
    const before = await rowsOf(channel.id);

    const report = await reconcile(deps, { channelId: channel.id, fix: false });
    expect(report.summary).toEqual({ channels: 1, missing: 1, extra: 2, fixed: 0 });
    const [only] = report.channels;
    expect(only!.missing.map((m) => m.event_id)).toEqual([reply.matrix_event_id]);
    expect(only!.extra.map((e) => [e.message_id, e.reason]).sort()).toEqual(
      [
        [ghostId, "absent"],
        [redacted.id, "redacted"],
      ].sort(),
    );
    expect(exitCodeFor(report.summary, false)).toBe(1);
    expect(await rowsOf(channel.id)).toEqual(before);

    // Every channel: the other one is consistent.
    const all = await reconcile(deps, { fix: false });
    expect(all.channels.find((c) => c.channel_id === other.id)).toMatchObject({ missing: [], extra: [] });
    expect(all.summary).toMatchObject({ missing: 1, extra: 2, fixed: 0 });

    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    published.length = 0;
    const fixed = await reconcile(deps, { channelId: channel.id, fix: true });
    expect(fixed.summary).toEqual({ channels: 1, missing: 1, extra: 2, fixed: 3 });
    expect(exitCodeFor(fixed.summary, true)).toBe(0);

    const after = await rowsOf(channel.id);
    const back = after.filter((r) => r.matrix_event_id === reply.matrix_event_id);
    expect(back).toHaveLength(1);
    expect(back[0]).toMatchObject({ thread_id: root.id, content_preview: "a thread reply", deleted_at: null });
    expect(Number(back[0]!.seq)).toBeGreaterThan(redacted.seq);
    expect(after.find((r) => r.id === ghostId)).toMatchObject({ content_preview: "" });
    expect(after.find((r) => r.id === ghostId)!.deleted_at).toBeInstanceOf(Date);
    expect(after.find((r) => r.id === redacted.id)!.deleted_at).toBeInstanceOf(Date);
    expect(after.find((r) => r.id === kept.id)).toMatchObject({ deleted_at: null, content_preview: "kept" });

    const frames = [await inbox.nextJson(), await inbox.nextJson(), await inbox.nextJson()];
    inbox.close();
    expect(frames[0]).toMatchObject({ type: "message.created", seq: Number(back[0]!.seq), message: { id: back[0]!.id, thread_id: root.id } });
    expect(frames.slice(1).map((f) => [f.type, f.message_id, f.deleted_by]).sort()).toEqual(
      [
        ["message.deleted", ghostId, "system:reconcile"],
        ["message.deleted", redacted.id, "system:reconcile"],
      ].sort(),
    );
    expect(published.map((e) => e.subject).sort()).toEqual(["messaging.message.created", "messaging.message.deleted", "messaging.message.deleted"]);

    // Gone from the listing; the thread shows its reply again.
    const listing = (await (await api(`/${channel.id}/messages`, { as: "user:owner" })).json()) as Array<{ id: string; deleted_at?: string | null }>;
    const visible = listing.filter((m) => !m.deleted_at).map((m) => m.id);
    expect(visible).not.toContain(ghostId);
    expect(visible).not.toContain(redacted.id);
    const thread = (await (await api(`/${channel.id}/messages/${root.id}/thread`, { as: "user:owner" })).json()) as Array<{ matrix_event_id: string }>;
    expect(thread.map((m) => m.matrix_event_id)).toEqual([reply.matrix_event_id]);

    expect((await reconcile(deps, { channelId: channel.id, fix: true })).summary).toEqual({ channels: 1, missing: 0, extra: 0, fixed: 0 });
    expect(await deps.sql`select 1 from matrix_inbox where event_id = ${reply.matrix_event_id}`).toHaveLength(0);
  });

  test("edits, reactions and redacted messages that the index already deleted are not differences", async () => {
    const channel = await createChannel(server, "user:owner");
    const message = await send(channel.id, "to edit");
    const gone = await send(channel.id, "to delete");
    expect((await api(`/${channel.id}/messages/${message.id}`, { method: "PATCH", as: "user:owner", json: { text: "edited" } })).status).toBe(200);
    expect((await api(`/${channel.id}/messages/${message.id}/reactions`, { method: "POST", as: "user:owner", json: { emoji: "👍" } })).status).toBeLessThan(300);
    expect((await api(`/${channel.id}/messages/${gone.id}`, { method: "DELETE", as: "user:owner" })).status).toBeLessThan(300);
    expect((await reconcile(deps, { channelId: channel.id, fix: false })).summary).toEqual({ channels: 1, missing: 0, extra: 0, fixed: 0 });
  });

  test("an unknown channel is refused", async () => {
    await expect(reconcile(deps, { channelId: crypto.randomUUID(), fix: false })).rejects.toBeInstanceOf(UnknownChannelError);
    await expect(reconcile(deps, { channelId: "not-a-uuid", fix: false })).rejects.toBeInstanceOf(UnknownChannelError);
  });
});
