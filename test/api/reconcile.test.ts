import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer, uniqueSlug } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";
import { reconcile, UnknownChannelError, type ReconcileDeps } from "../../src/features/reconcile/reconcile.ts";
import { exitCodeFor } from "../../src/features/reconcile/report.ts";
import postgres from "postgres";
import { LostRoomAnswer } from "../helpers/lost-room-answer.ts";
import { freshPostgresDatabase, serviceMissing } from "../helpers/services.ts";

setDefaultTimeout(90_000);

// Reconciling channels with their Matrix rooms.
{
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
}

// The reconcile command line.
{
  const root = new URL("../..", import.meta.url).pathname;

  /** `bun run reconcile` as an operator runs it: its own process, the service's environment, the service stopped. */
  async function runCli(databaseUrl: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string; summary: unknown }> {
    const proc = Bun.spawn(["bun", "scripts/reconcile.ts", ...args], {
      cwd: root,
      // Only what the command should see: no homeserver or NATS from the test shell.
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    const last = stdout.trim().split("\n").at(-1) ?? "";
    let summary: unknown = null;
    try {
      summary = JSON.parse(last);
    } catch {
      summary = null;
    }
    return { code, stdout, stderr, summary };
  }

  describe.skipIf(serviceMissing("DATABASE_URL"))("bun run reconcile (PostgreSQL, local backend)", () => {
    let db: { url: string; drop: () => Promise<void> };
    let channelId: string;
    let missingEvent: string;
    let ghostId: string;
    let seeded: Array<{ id: string; matrix_event_id: string }> = [];

    beforeAll(async () => {
      db = await freshPostgresDatabase("daarion_reconcile");
      const server = await startTestServer({ DATABASE_URL: db.url });
      try {
        const channel = await createChannel(server, "user:owner");
        channelId = channel.id;
        const sent: Array<{ id: string; matrix_event_id: string }> = [];
        for (const text of ["one", "two", "three"]) {
          const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:owner", json: { text } });
          expect(res.status).toBe(201);
          sent.push(await res.json());
        }
        seeded = sent;
      } finally {
        await server.stop();
      }
      // Diverge the index only once the service is stopped, so its sync poller cannot repair it
      // (by re-indexing the echo of the deleted row) before the CLI looks.
      const sql = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        missingEvent = seeded[1]!.matrix_event_id;
        await sql`delete from messages where id = ${seeded[1]!.id}`;
        ghostId = Bun.randomUUIDv7();
        await sql`
        insert into messages (id, channel_id, seq, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id, content_preview, content_type, msgtype, delivery_state)
        values (${ghostId}, ${channelId}, 1000, ${"$cli-ghost-" + Date.now()}, 'm.room.message', 'user:owner', 'human', '@user-owner:daarion.city', 'ghost', 'text', 'm.text', 'sent')`;
      } finally {
        await sql.end();
      }
    }, 90_000);
    afterAll(() => db?.drop(), 60_000);

    test("reports, fixes, and then finds the index consistent; exit codes 1, 0, 0", async () => {
      const report = await runCli(db.url, []);
      expect(report.stderr).not.toMatch(/"level":(50|60)/); // warnings may appear on a busy machine; errors may not
      expect(report.code).toBe(1);
      expect(report.summary).toEqual({ channels: 1, missing: 1, extra: 1, fixed: 0 });
      expect(report.stdout).toContain(`missing  ${missingEvent}`);
      expect(report.stdout).toContain(`message ${ghostId}`);

      const fixed = await runCli(db.url, ["--channel", channelId, "--fix"]);
      expect(fixed.code).toBe(0);
      expect(fixed.summary).toEqual({ channels: 1, missing: 1, extra: 1, fixed: 2 });

      const sql = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`select seq, deleted_at from messages where matrix_event_id = ${missingEvent}`;
        expect(rows).toHaveLength(1);
        expect(rows[0]!.deleted_at).toBeNull();
        const [ghost] = await sql`select deleted_at, content_preview from messages where id = ${ghostId}`;
        expect(ghost!.deleted_at).toBeInstanceOf(Date);
        expect(ghost!.content_preview).toBe("");
      } finally {
        await sql.end();
      }

      const clean = await runCli(db.url, []);
      expect(clean.code).toBe(0);
      expect(clean.summary).toEqual({ channels: 1, missing: 0, extra: 0, fixed: 0 });
    });

    test("bad usage and unknown channels exit 2", async () => {
      expect((await runCli(db.url, ["--bogus"])).code).toBe(2);
      const unknown = await runCli(db.url, ["--channel", crypto.randomUUID()]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain("unknown channel");
    });
  });

  describe.skipIf(serviceMissing("DATABASE_URL"))("bun run reconcile: orphan rooms (PostgreSQL, local backend)", () => {
    let db: { url: string; drop: () => Promise<void> };
    const slug = uniqueSlug("orphan");
    let room: { roomId: string; alias: string };

    beforeAll(async () => {
      db = await freshPostgresDatabase("daarion_reconcile_orphan");
      const lostAnswer = new LostRoomAnswer();
      const server = await startTestServer({ DATABASE_URL: db.url }, { wrapMatrix: lostAnswer.wrap });
      try {
        // The room is made, its answer lost, and nobody retries: a room with our alias, no channel row.
        lostAnswer.armNext();
        const res = await server.api("/api/messaging/channels", { method: "POST", as: "user:owner", json: { slug, name: "Orphan", microdao_id: "microdao:daarion" } });
        expect(res.status).toBe(502);
        room = lostAnswer.lost!;
      } finally {
        await server.stop();
      }
    }, 90_000);
    afterAll(() => db?.drop(), 60_000);

    test("reports the orphan room (exit 1); --fix adopts it as the channel (exit 0); then nothing is left", async () => {
      const report = await runCli(db.url, []);
      expect(report.code).toBe(1);
      expect(report.stdout).toContain(`orphan   ${room.alias}  room ${room.roomId}: creation of '${slug}' by user:owner`);
      expect(report.summary).toEqual({ channels: 0, missing: 0, extra: 0, fixed: 0 });

      const fixed = await runCli(db.url, ["--fix"]);
      expect(fixed.code).toBe(0);
      expect(fixed.stdout).toContain("(adopted as channel ");
      const sql = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`select slug, matrix_room_id, created_by from channels`;
        expect([...rows]).toEqual([{ slug, matrix_room_id: room.roomId, created_by: "user:owner" }]);
      } finally {
        await sql.end();
      }

      const clean = await runCli(db.url, []);
      expect(clean.code).toBe(0);
      expect(clean.stdout).not.toContain("orphan   ");
      expect(clean.summary).toEqual({ channels: 1, missing: 0, extra: 0, fixed: 0 });
    });
  });
}
