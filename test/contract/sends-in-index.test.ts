import { describe, expect, test } from "bun:test";
import pino from "pino";
import { sendInIndexTogether } from "../../src/channel/sends-in-index.ts";
import { LocalMatrixBackend } from "../../src/matrix/local.ts";
import { NOT_PLAIN_SQLSTATE } from "../../src/matrix/port.ts";
import { openDatabase } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrate.ts";
import { insertChannel } from "../../src/store/channels.ts";
import type { NewMessage } from "../../src/store/messages.ts";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";

const ann = "@ann:daarion.city";
const bob = "@bob:daarion.city";

// The local backend's sends written by the index's own statement: a message row (already sent),
// its Matrix event and its outbox event commit together, or nothing of the batch does.
describe(`sends inside the index's statement (${databaseUrl ? "PostgreSQL" : "PGlite"})`, () => {
  test("several channels at once: each batch written whole; one whose sender is not joined writes nothing and says so", async () => {
    const fresh = databaseUrl ? await freshPostgresDatabase("daarion_sends_in_index") : null;
    const log = pino({ level: "silent" });
    const db = await openDatabase({ url: fresh?.url, dataDir: ":memory:", poolMax: 2 }, log);
    const matrix = new LocalMatrixBackend(db.sql, "daarion.city");
    try {
      await migrate(db.sql, log);
      const { sql } = db;
      await matrix.ensureUser(ann);
      await matrix.ensureUser(bob);
      const channels: Array<{ id: string; room: string }> = [];
      for (let i = 0; i < 4; i++) {
        const { roomId } = await matrix.createRoom({ creator: ann, aliasLocalpart: `sii-${i}`, name: `C${i}`, topic: null, visibility: "public", isEncrypted: false, isDirect: false });
        const id = Bun.randomUUIDv7();
        await sql.begin((tx) => insertChannel(tx, {
          id, slug: `c${i}`, name: `C${i}`, description: null, topic: null, microdao_id: "microdao:sii",
          matrix_room_id: roomId, matrix_alias: `#sii-${i}:daarion.city`, visibility: "public", is_encrypted: false, created_by: "user:ann",
        }));
        channels.push({ id, room: roomId });
      }
      const homeserver = matrix.sendsInIndex;
      const batch = (channel: { id: string; room: string }, sender: string, n: number) => {
        const messages: NewMessage[] = Array.from({ length: n }, (_, k) => ({
          id: Bun.randomUUIDv7(), channel_id: channel.id, seq: k + 1, matrix_event_id: homeserver.newEventId(), matrix_type: "m.room.message",
          sender_id: sender === ann ? "user:ann" : "user:bob", sender_type: "human", sender_matrix_id: sender, sender_display_name: null,
          content_preview: `hello ${k}`, content_type: "text", msgtype: "m.text", thread_id: null, reply_to: null,
          delivery_state: "sent", outbox_content: null, created_at: new Date(), media: null, voice: null, mentions: [],
        }));
        return {
          homeserver,
          messages,
          events: messages.map((m) => ({ eventId: `message.created:${m.id}`, subject: "messaging.message.created", payload: { message_id: m.id } })),
          room: {
            roomId: channel.room,
            events: messages.map((m) => ({ asUser: sender, type: "m.room.message", content: { msgtype: "m.text", body: m.content_preview }, txnId: m.id })),
            eventIds: messages.map((m) => m.matrix_event_id!),
          },
        };
      };
      // Bob never joined channel 2's room: only that channel's batch is refused.
      const sends = channels.map((c, i) => batch(c, i === 2 ? bob : ann, 2));
      const outcomes = await Promise.allSettled(sends.map((s) => sendInIndexTogether(sql, s)));
      expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
      const refused = outcomes[2] as PromiseRejectedResult;
      expect((refused.reason as { code?: string }).code).toBe(NOT_PLAIN_SQLSTATE);
      for (const [i, o] of outcomes.entries()) {
        if (o.status !== "fulfilled") continue;
        expect(o.value.map((r) => [r.id, Number(r.seq), r.delivery_state, r.matrix_event_id])).toEqual(sends[i]!.messages.map((m) => [m.id, m.seq, "sent", m.matrix_event_id]));
      }

      // What a reader of the database sees: the three batches, each row's event in its room, each event queued once.
      const messages = await sql`select id, channel_id, matrix_event_id, delivery_state from messages order by channel_id, seq`;
      const written = sends.filter((_, i) => i !== 2).flatMap((s) => s.messages);
      expect(messages.map((r) => [r.id, r.matrix_event_id, r.delivery_state])).toEqual(
        [...written].sort((a, b) => a.channel_id.localeCompare(b.channel_id) || a.seq - b.seq).map((m) => [m.id, m.matrix_event_id, "sent"]),
      );
      const events = await sql`select event_id, room_id, sender, txn_id, content->>'body' as body from local_matrix_events where type = 'm.room.message' order by stream_ordering`;
      // Each room's events in its batch's order (rooms' statements may commit in either order).
      const inRoom = (roomId: string) => events.filter((e) => e.room_id === roomId).map((e) => [e.event_id, e.sender, e.txn_id, e.body]);
      for (const [i, s] of sends.entries()) {
        expect(inRoom(s.room.roomId)).toEqual(i === 2 ? [] : s.messages.map((m, k) => [m.matrix_event_id, ann, s.room.events[k]!.txnId, m.content_preview]));
      }
      const queued = await sql`select event_id from event_outbox`;
      expect(queued.map((q) => q.event_id).sort()).toEqual(written.map((m) => `message.created:${m.id}`).sort());

      // The same txnIds again (a batch that was written already) are not plain either: nothing is doubled.
      const first = sends[0]!;
      const retried = first.messages.map((m) => ({ ...m, id: Bun.randomUUIDv7(), seq: m.seq + 10, matrix_event_id: homeserver.newEventId() }));
      const again = await sendInIndexTogether(sql, { ...first, messages: retried, events: null, room: { ...first.room, eventIds: retried.map((m) => m.matrix_event_id!) } }).catch((err) => err);
      expect((again as { code?: string }).code).toBe(NOT_PLAIN_SQLSTATE);
      expect((await sql`select count(*)::int as n from messages`)[0]!.n).toBe(written.length);
      expect((await sql`select count(*)::int as n from local_matrix_events where type = 'm.room.message'`)[0]!.n).toBe(written.length);
    } finally {
      await matrix.close?.();
      await db.close();
      await fresh?.drop();
    }
  }, 30_000);
});
