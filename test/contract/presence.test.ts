import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { matrixAdapters } from "../helpers/adapters.ts";
import { MatrixError, type EphemeralEvent, type MatrixBackend, type SyncBatch } from "../../src/matrix/port.ts";

/** The port's typing and read-marker operations, and the ephemeral events sync returns for them, on every adapter. */
// Synapse sweeps typing timeouts every few seconds and answers sync over the network.
setDefaultTimeout(30_000);
const adapters = matrixAdapters();

for (const adapter of adapters) {
  describe(`Matrix contract (typing, read markers): ${adapter.name}`, () => {
    let m: MatrixBackend;
    let close: () => Promise<void>;
    const server = adapter.serverName;
    const alice = `@user-alice:${server}`;
    const bob = `@user-bob:${server}`;
    let n = 0;
    const alias = () => `presence-${Date.now().toString(36)}-${n++}`;

    beforeAll(async () => {
      ({ backend: m, close } = await adapter.open());
      await m.ensureUser(alice);
      await m.ensureUser(bob);
    }, 60000);
    afterAll(() => close?.(), 60000);

    const newRoom = () =>
      m.createRoom({ creator: alice, aliasLocalpart: alias(), name: "Room", topic: null, visibility: "public", isEncrypted: false, isDirect: false });

    /** Syncs from `since` until an ephemeral event of the room matches, or fails after the deadline. */
    async function untilEphemeral(since: string, roomId: string, pred: (e: EphemeralEvent) => boolean, timeoutMs = 15000) {
      const deadline = Date.now() + timeoutMs;
      let token = since;
      const seen: EphemeralEvent[] = [];
      while (Date.now() < deadline) {
        const batch: SyncBatch = await m.sync(token, Math.min(5000, deadline - Date.now()), new AbortController().signal);
        token = batch.nextBatch;
        for (const e of batch.ephemeral ?? []) {
          if (e.room_id !== roomId) continue;
          if (pred(e)) return { event: e, nextBatch: token };
          seen.push(e);
        }
      }
      throw new Error(`no matching ephemeral event; saw ${JSON.stringify(seen)}`);
    }

    test("setTyping shows as m.typing in sync, and stopping clears it", async () => {
      const { roomId } = await newRoom();
      const start = await m.sync(null, 0, new AbortController().signal);
      await m.setTyping(roomId, alice, true, 30000);
      const typing = await untilEphemeral(start.nextBatch, roomId, (e) => e.type === "m.typing");
      expect(typing.event.content).toEqual({ user_ids: [alice] });
      await m.setTyping(roomId, alice, false, 0);
      const stopped = await untilEphemeral(typing.nextBatch, roomId, (e) => e.type === "m.typing");
      expect(stopped.event.content).toEqual({ user_ids: [] });
    });

    test("typing ends by itself after its timeout", async () => {
      const { roomId } = await newRoom();
      const start = await m.sync(null, 0, new AbortController().signal);
      await m.setTyping(roomId, alice, true, 1000);
      const typing = await untilEphemeral(start.nextBatch, roomId, (e) => e.type === "m.typing");
      expect(typing.event.content).toEqual({ user_ids: [alice] });
      const ended = await untilEphemeral(typing.nextBatch, roomId, (e) => e.type === "m.typing");
      expect(ended.event.content).toEqual({ user_ids: [] });
    });

    test("setReadMarker shows as the user's public m.read receipt in sync", async () => {
      const { roomId } = await newRoom();
      const { eventId } = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "read me" }, crypto.randomUUID());
      const start = await m.sync(null, 0, new AbortController().signal);
      await m.setReadMarker(roomId, alice, eventId);
      const receipt = await untilEphemeral(start.nextBatch, roomId, (e) => e.type === "m.receipt" && eventId in e.content);
      const readers = (receipt.event.content[eventId] as Record<string, Record<string, { ts: number }>>)["m.read"]!;
      expect(Object.keys(readers)).toContain(alice);
      expect(readers[alice]!.ts).toBeGreaterThan(0);
    });

    test("someone outside the room may neither type nor set a read marker", async () => {
      const { roomId } = await newRoom();
      const { eventId } = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "x" }, crypto.randomUUID());
      for (const attempt of [m.setTyping(roomId, bob, true, 30000), m.setReadMarker(roomId, bob, eventId)]) {
        const err = await attempt.then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(MatrixError);
        expect((err as MatrixError).errcode).toBe("M_FORBIDDEN");
      }
    });
  });
}
