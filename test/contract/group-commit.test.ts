import { describe, expect, test } from "bun:test";
import pino from "pino";
import { openDatabase } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrate.ts";
import { findChannel, insertChannel } from "../../src/store/channels.ts";
import { findMember, upsertMember } from "../../src/store/members.ts";
import { findChannelAndMemberTogether } from "../../src/store/access.ts";
import { insertPendingMessages, markAllSentTogether, type NewMessage } from "../../src/store/messages.ts";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";

const message = (channelId: string, seq: number, id = Bun.randomUUIDv7()): NewMessage => ({
  id,
  channel_id: channelId,
  seq,
  matrix_event_id: null,
  matrix_type: "m.room.message",
  sender_id: "user:ann",
  sender_type: "human",
  sender_matrix_id: "@ann:daarion.city",
  sender_display_name: null,
  content_preview: `message ${seq}`,
  content_type: "text",
  msgtype: "m.text",
  thread_id: null,
  reply_to: null,
  delivery_state: "pending",
  outbox_content: { msgtype: "m.text", body: `message ${seq}` },
  created_at: null,
  media: null,
  voice: null,
  mentions: [],
});

// Several channels' writes at the same moment share statements; each channel's still stand or fall alone.
describe(`store: group commit across channels (${databaseUrl ? "PostgreSQL" : "PGlite"})`, () => {
  test("pending rows, sent marks and look-ups of many channels at once: each answered as if alone", async () => {
    const fresh = databaseUrl ? await freshPostgresDatabase("daarion_group_commit") : null;
    const log = pino({ level: "silent" });
    const db = await openDatabase({ url: fresh?.url, dataDir: ":memory:", poolMax: 2 }, log);
    try {
      await migrate(db.sql, log);
      const { sql } = db;
      const channels = await sql.begin(async (tx) => {
        const rows = [];
        for (let i = 0; i < 8; i++) {
          const id = Bun.randomUUIDv7();
          rows.push(
            await insertChannel(tx, {
              id, slug: `c${i}`, name: `C${i}`, description: null, topic: null, microdao_id: "microdao:gc",
              matrix_room_id: `!r${i}:daarion.city`, matrix_alias: `#c${i}:daarion.city`, visibility: "public", is_encrypted: false, created_by: "user:ann",
            }),
          );
          await upsertMember(tx, {
            channel_id: id, member_id: "user:ann", member_type: "human", matrix_user_id: "@ann:daarion.city", role: "member",
            can_read: true, can_write: true, can_invite: false, can_kick: false, can_create_tasks: false, matrix_power_level: 0,
            invited_by: null, display_name: null,
          } as never);
        }
        return rows;
      });
      const taken = message(channels[3]!.id, 1);
      await insertPendingMessages(sql, [taken]);

      // Eight channels at once, one of which reuses an id already written: only that one is refused.
      const jobs = channels.map((c, i) => (i === 3 ? [message(c.id, 2), message(c.id, 3, taken.id)] : [message(c.id, 1), message(c.id, 2)]));
      const outcomes = await Promise.allSettled(jobs.map((job) => insertPendingMessages(sql, job)));
      expect(outcomes.map((o) => o.status)).toEqual(channels.map((_, i) => (i === 3 ? "rejected" : "fulfilled")));
      for (const [i, o] of outcomes.entries()) if (o.status === "fulfilled") expect(o.value.map((row) => [row.id, Number(row.seq)])).toEqual(jobs[i]!.map((m) => [m.id, m.seq]));
      const counts = await sql`select channel_id, count(*)::int as n from messages group by channel_id`;
      expect(new Map(counts.map((r) => [r.channel_id, r.n]))).toEqual(new Map(channels.map((c, i) => [c.id, i === 3 ? 1 : 2])));

      // Sent marks of several channels together, each answered with its own rows, in order.
      const written = jobs.filter((_, i) => i !== 3);
      const sent = await Promise.all(written.map((job, j) => markAllSentTogether(sql, job.map((m, k) => ({ id: m.id, eventId: `$e${j}-${k}` })), null)));
      sent.forEach((rows, j) => expect(rows.map((r) => [r.id, r.delivery_state, r.matrix_event_id])).toEqual(written[j]!.map((m, k) => [m.id, "sent", `$e${j}-${k}`])));

      // Access look-ups together: any spelling of a uuid PostgreSQL reads, a missing channel, a
      // non-member; each answer is what the plain look-ups of its channel and member give.
      const keys: Array<[string, string]> = [
        [channels[0]!.id.toUpperCase(), "user:ann"],
        [Bun.randomUUIDv7(), "user:ann"],
        [channels[1]!.id, "user:bob"],
        [channels[2]!.id, "user:ann"],
      ];
      const found = await Promise.all(keys.map(([c, m]) => findChannelAndMemberTogether(sql, c, m)));
      const plain = await Promise.all(keys.map(async ([c, m]) => ({ channel: await findChannel(sql, c), member: await findMember(sql, c, m) })));
      expect(found).toEqual(plain);
      expect(found.map((f) => [f.channel?.id ?? null, f.member?.member_id ?? null])).toEqual([
        [channels[0]!.id, "user:ann"],
        [null, null],
        [channels[1]!.id, null],
        [channels[2]!.id, "user:ann"],
      ]);
      expect(found[0]!.member!.joined_at).toBeInstanceOf(Date);
      // A malformed id is its caller's error alone.
      const lookups = await Promise.allSettled([findChannelAndMemberTogether(sql, "not-a-uuid", "user:ann"), findChannelAndMemberTogether(sql, channels[4]!.id, "user:ann")]);
      expect(lookups[0]!.status).toBe("rejected");
      expect(lookups[1]!.status === "fulfilled" && lookups[1]!.value.channel?.id).toBe(channels[4]!.id);
    } finally {
      await db.close();
      await fresh?.drop();
    }
  }, 30_000);
});
