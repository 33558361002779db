import { describe, expect, test } from "bun:test";
import pino from "pino";
import { openDatabase } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrate.ts";
import { consumeInboxEvent, readInbox, storeSyncBatch } from "../../src/store/inbox.ts";
import type { MatrixEvent } from "../../src/matrix/port.ts";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";

const types = { timeline: ["m.room.message"], state: [], ephemeral: [] };
const event = (id: string): MatrixEvent =>
  ({ event_id: id, room_id: "!room:daarion.city", type: "m.room.message", sender: "@bob:elsewhere", origin_server_ts: 1, content: { body: id } }) as MatrixEvent;

// The sync poller's drain starts from the page the batch's own statement read (no round trip of its own).
describe(`inbox: a stored /sync batch answers the inbox's first page (${databaseUrl ? "PostgreSQL" : "PGlite"})`, () => {
  test("what was left in the inbox first, then the batch's new events, each once; the same as a read after it", async () => {
    const fresh = databaseUrl ? await freshPostgresDatabase("daarion_inbox_page") : null;
    const log = pino({ level: "silent" });
    const db = await openDatabase({ url: fresh?.url, dataDir: ":memory:", poolMax: 2 }, log);
    try {
      await migrate(db.sql, log);
      const ids = (rows: { event: MatrixEvent }[] | null) => rows?.map((r) => r.event.event_id) ?? null;
      expect(ids(await storeSyncBatch(db.sql, "hs", "s1", [event("$a"), event("$b")], types, 500))).toEqual(["$a", "$b"]);
      // $a indexed, $b left (its channel failed): it stays ahead of the next batch; $b again is not doubled.
      await consumeInboxEvent(db.sql, "$a");
      const page = await storeSyncBatch(db.sql, "hs", "s2", [event("$b"), event("$c"), event("$d")], types, 500);
      expect(ids(page)).toEqual(["$b", "$c", "$d"]);
      expect(page).toEqual(await readInbox(db.sql, 500));
      // None is in the index: the channel loop may skip its look-up for a Matrix user's message.
      expect(page!.map((r) => r.indexed)).toEqual([false, false, false]);
      // The page is bounded: the drain reads the rest itself.
      expect(ids(await storeSyncBatch(db.sql, "hs", "s3", [event("$e")], types, 2))).toEqual(["$b", "$c"]);
      // Nothing worth keeping: only the position moves, and there is no page.
      expect(await storeSyncBatch(db.sql, "hs", "s4", [], types, 500)).toBeNull();
      const [position] = await db.sql`select next_batch from matrix_sync_state where homeserver = 'hs'`;
      expect(position?.next_batch).toBe("s4");
    } finally {
      await db.close();
      await fresh?.drop();
    }
  }, 30_000);
});
