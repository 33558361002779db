import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import postgres from "postgres";
import { createChannel, startTestServer, uniqueSlug } from "../helpers/server.ts";
import { LostRoomAnswer } from "../helpers/lost-room-answer.ts";
import { freshPostgresDatabase, serviceMissing } from "../helpers/services.ts";

setDefaultTimeout(90_000);
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
