import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import pino from "pino";
import { openDatabase, type Database } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrate.ts";
import { LocalMatrixBackend } from "../../src/matrix/local.ts";
import type { MatrixBackend, MatrixEvent } from "../../src/matrix/port.ts";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";
import { synapse, synapseBackend, synapseMissing } from "../helpers/synapse.ts";

/** roomMessages, the timeline reader reconciliation walks, on every adapter. */
interface Adapter {
  name: string;
  serverName: string;
  open(): Promise<{ backend: MatrixBackend; close(): Promise<void> }>;
}

const log = pino({ level: "silent" });
setDefaultTimeout(30_000);
const adapters: Adapter[] = [
  {
    name: "local",
    serverName: "daarion.city",
    async open() {
      const fresh = databaseUrl ? await freshPostgresDatabase("daarion_contract") : null;
      const db: Database = await openDatabase({ url: fresh?.url, dataDir: ":memory:", poolMax: 4 }, log);
      await migrate(db.sql, log);
      const backend = new LocalMatrixBackend(db.sql, "daarion.city");
      return {
        backend,
        async close() {
          await backend.close();
          await db.close();
          await fresh?.drop();
        },
      };
    },
  },
];
if (!synapseMissing()) {
  adapters.push({
    name: "synapse",
    serverName: synapse!.serverName,
    async open() {
      const backend = synapseBackend();
      return { backend, close: () => backend.close() };
    },
  });
}

for (const adapter of adapters) {
  describe(`Matrix contract (roomMessages): ${adapter.name}`, () => {
    let m: MatrixBackend;
    let close: () => Promise<void>;
    const alice = `@user-alice:${adapter.serverName}`;
    let roomId: string;
    const sent: string[] = [];
    let redacted: string;

    beforeAll(async () => {
      ({ backend: m, close } = await adapter.open());
      await m.ensureUser(alice);
      ({ roomId } = await m.createRoom({
        creator: alice,
        aliasLocalpart: `contract-timeline-${Date.now().toString(36)}`,
        name: "Timeline",
        topic: null,
        visibility: "private",
        isEncrypted: false,
        isDirect: false,
      }));
      for (let i = 0; i < 5; i++) {
        const { eventId } = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: `message ${i}` }, crypto.randomUUID());
        sent.push(eventId);
      }
      redacted = sent[2]!;
      await m.redact(roomId, alice, redacted, crypto.randomUUID());
    }, 60_000);
    afterAll(() => close?.(), 60_000);

    async function walk(dir: "b" | "f", limit: number): Promise<{ events: MatrixEvent[]; pages: number }> {
      const events: MatrixEvent[] = [];
      let from: string | null = null;
      let pages = 0;
      for (; pages < 100; ) {
        const page = await m.roomMessages(roomId, { from, dir, limit });
        pages++;
        expect(page.events.length).toBeLessThanOrEqual(limit);
        events.push(...page.events);
        if (!page.end) break;
        from = page.end;
      }
      return { events, pages };
    }

    const messageIds = (events: MatrixEvent[]) => events.filter((e) => e.type === "m.room.message").map((e) => e.event_id);

    test("dir b pages from the newest event back to the room's creation, and the pages end", async () => {
      const { events, pages } = await walk("b", 2);
      expect(pages).toBeGreaterThan(3);
      expect(messageIds(events)).toEqual([...sent].reverse());
      expect(events.at(-1)!.type).toBe("m.room.create");
      expect(events.every((e) => e.room_id === roomId)).toBe(true);
      expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
    });

    test("dir f gives the same timeline oldest first", async () => {
      const backwards = await walk("b", 3);
      const forwards = await walk("f", 3);
      expect(forwards.events[0]!.type).toBe("m.room.create");
      expect(messageIds(forwards.events)).toEqual(sent);
      expect(forwards.events.map((e) => e.event_id)).toEqual(backwards.events.map((e) => e.event_id).reverse());
    });

    test("a redacted message keeps its id and type with empty content; the redaction names it", async () => {
      const { events } = await walk("b", 50);
      const target = events.find((e) => e.event_id === redacted)!;
      expect(target.type).toBe("m.room.message");
      expect(target.content.body).toBeUndefined();
      const live = events.find((e) => e.event_id === sent[0])!;
      expect(live.content).toMatchObject({ msgtype: "m.text", body: "message 0" });
      expect(events.some((e) => e.type === "m.room.redaction" && e.redacts === redacted)).toBe(true);
    });
  });
}
