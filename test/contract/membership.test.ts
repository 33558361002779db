import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { matrixAdapters } from "../helpers/adapters.ts";
import { MatrixError, type MatrixBackend } from "../../src/matrix/port.ts";

/** The Matrix port's contract for membership and room state: kick, leave, getState. */
const adapters = matrixAdapters();

for (const adapter of adapters) {
  describe(`Matrix contract (membership): ${adapter.name}`, () => {
    let m: MatrixBackend;
    let close: () => Promise<void>;
    const server = adapter.serverName;
    const alice = `@user-alice:${server}`;
    let n = 0;
    const alias = () => `contract-mem-${Date.now().toString(36)}-${n++}`;
    const fresh = async () => {
      const user = `@user-m${Date.now().toString(36)}${n++}:${server}`;
      await m.ensureUser(user);
      return user;
    };

    beforeAll(async () => {
      ({ backend: m, close } = await adapter.open());
      await m.ensureUser(alice);
    }, 60000);
    afterAll(() => close?.(), 60000);

    const newRoom = (visibility: "public" | "private" = "private") =>
      m.createRoom({ creator: alice, aliasLocalpart: alias(), name: "Room", topic: "Topic", visibility, isEncrypted: false, isDirect: false });

    const refusal = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        expect(err).toBeInstanceOf(MatrixError);
        return (err as MatrixError).errcode;
      }
      throw new Error("expected the homeserver to refuse");
    };

    test("getState returns current state content, or null when there is none", async () => {
      const { roomId } = await newRoom();
      expect(await m.getState(roomId, "m.room.name", "")).toEqual({ name: "Room" });
      expect(await m.getState(roomId, "m.room.member", alice)).toMatchObject({ membership: "join" });
      expect(await m.getState(roomId, "m.room.pinned_events", "")).toBeNull();
      await m.sendState(roomId, alice, "m.room.pinned_events", "", { pinned: ["$x"] });
      expect(await m.getState(roomId, "m.room.pinned_events", "")).toEqual({ pinned: ["$x"] });
      const levels = await m.getState(roomId, "m.room.power_levels", "");
      expect(levels).toMatchObject({ users_default: 0 });
    });

    test("the creator kicks a member, who can then no longer send", async () => {
      const { roomId } = await newRoom();
      const bob = await fresh();
      await m.invite(roomId, alice, bob);
      await m.join(roomId, bob);
      await m.kick(roomId, alice, bob, "bye");
      expect(await m.getState(roomId, "m.room.member", bob)).toMatchObject({ membership: "leave", reason: "bye" });
      expect(await refusal(m.sendEvent(roomId, bob, "m.room.message", { msgtype: "m.text", body: "x" }, crypto.randomUUID()))).toBe("M_FORBIDDEN");
    });

    test("a member without power cannot kick; nobody kicks someone not in the room", async () => {
      const { roomId } = await newRoom("public");
      const bob = await fresh();
      const carol = await fresh();
      await m.join(roomId, bob);
      await m.join(roomId, carol);
      expect(await refusal(m.kick(roomId, bob, carol))).toBe("M_FORBIDDEN");
      expect(await refusal(m.kick(roomId, bob, alice))).toBe("M_FORBIDDEN");
      expect(await m.getState(roomId, "m.room.member", carol)).toMatchObject({ membership: "join" });
      const stranger = await fresh();
      expect(await refusal(m.kick(roomId, alice, stranger))).toBe("M_FORBIDDEN");
    });

    test("power 50 may kick power 0 (after a power_levels change by the creator)", async () => {
      const { roomId } = await newRoom("public");
      const mod = await fresh();
      const bob = await fresh();
      await m.join(roomId, mod);
      await m.join(roomId, bob);
      const levels = (await m.getState(roomId, "m.room.power_levels", ""))!;
      await m.sendState(roomId, alice, "m.room.power_levels", "", { ...levels, users: { ...(levels.users as object), [mod]: 50 } });
      await m.kick(roomId, mod, bob);
      expect(await m.getState(roomId, "m.room.member", bob)).toMatchObject({ membership: "leave" });
    });

    test("leave removes the member; leaving again is done", async () => {
      const { roomId } = await newRoom("public");
      const bob = await fresh();
      await m.join(roomId, bob);
      await m.leave(roomId, bob);
      expect(await m.getState(roomId, "m.room.member", bob)).toMatchObject({ membership: "leave" });
      await m.leave(roomId, bob);
      expect(await refusal(m.sendEvent(roomId, bob, "m.room.message", { msgtype: "m.text", body: "x" }, crypto.randomUUID()))).toBe("M_FORBIDDEN");
    });
  });
}
