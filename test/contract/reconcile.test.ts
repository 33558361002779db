import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { matrixAdapters } from "../helpers/adapters.ts";
import type { MatrixBackend, MatrixEvent } from "../../src/matrix/port.ts";

/** roomMessages, the timeline reader reconciliation walks, on every adapter. */
setDefaultTimeout(30_000);
const adapters = matrixAdapters();

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
