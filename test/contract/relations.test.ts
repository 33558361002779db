import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { matrixAdapters } from "../helpers/adapters.ts";
import { MatrixError, type MatrixBackend } from "../../src/matrix/port.ts";

/**
 * What reactions, edits and deletion rely on from a homeserver, checked on every adapter:
 * one annotation per sender, target and key (M_DUPLICATE_ANNOTATION), a redacted annotation no
 * longer counts, and the room creator may redact anyone's event.
 */
// Synapse round trips, on a machine other suites share.
setDefaultTimeout(30_000);

const adapters = matrixAdapters();

for (const adapter of adapters) {
  describe(`Matrix relations contract: ${adapter.name}`, () => {
    let m: MatrixBackend;
    let close: () => Promise<void>;
    const server = adapter.serverName;
    const alice = `@user-alice:${server}`;
    const bob = `@user-bob:${server}`;
    let n = 0;

    beforeAll(async () => {
      ({ backend: m, close } = await adapter.open());
      await m.ensureUser(alice);
      await m.ensureUser(bob);
    }, 60000);
    afterAll(() => close?.(), 60000);

    const publicRoomWithBob = async () => {
      const { roomId } = await m.createRoom({
        creator: alice,
        aliasLocalpart: `relations-${Date.now().toString(36)}-${n++}`,
        name: "Room",
        topic: null,
        visibility: "public",
        isEncrypted: false,
        isDirect: false,
      });
      await m.join(roomId, bob);
      return roomId;
    };
    const annotation = (eventId: string, key: string) => ({ "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key } });
    const refusal = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        expect(err).toBeInstanceOf(MatrixError);
        return (err as MatrixError).errcode;
      }
      throw new Error("expected the homeserver to refuse");
    };

    test("a second identical annotation is M_DUPLICATE_ANNOTATION; another key or sender is fine; a redacted one no longer counts", async () => {
      const roomId = await publicRoomWithBob();
      const { eventId: target } = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "react" }, crypto.randomUUID());
      const first = await m.sendEvent(roomId, bob, "m.reaction", annotation(target, "👍"), crypto.randomUUID());
      expect(await refusal(m.sendEvent(roomId, bob, "m.reaction", annotation(target, "👍"), crypto.randomUUID()))).toBe("M_DUPLICATE_ANNOTATION");
      await m.sendEvent(roomId, bob, "m.reaction", annotation(target, "🎉"), crypto.randomUUID());
      await m.sendEvent(roomId, alice, "m.reaction", annotation(target, "👍"), crypto.randomUUID());
      await m.redact(roomId, bob, first.eventId, crypto.randomUUID());
      const again = await m.sendEvent(roomId, bob, "m.reaction", annotation(target, "👍"), crypto.randomUUID());
      expect(again.eventId).not.toBe(first.eventId);
    });

    test("the room's creator may redact another member's event; the redaction names it", async () => {
      const roomId = await publicRoomWithBob();
      const { eventId } = await m.sendEvent(roomId, bob, "m.room.message", { msgtype: "m.text", body: "spam" }, crypto.randomUUID());
      const { eventId: redactionId } = await m.redact(roomId, alice, eventId, crypto.randomUUID());
      const redaction = await m.getEvent(roomId, redactionId, alice);
      expect(redaction).toMatchObject({ type: "m.room.redaction", sender: alice, redacts: eventId });
      expect((await m.getEvent(roomId, eventId, alice)).content).toEqual({});
    });
  });
}
