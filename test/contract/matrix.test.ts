import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { matrixAdapters } from "../helpers/adapters.ts";
import { createHmac } from "node:crypto";
import { MatrixError, type MatrixBackend } from "../../src/matrix/port.ts";
import { SYNAPSE_TURN_TTL_S, SYNAPSE_TURN_URIS } from "../../scripts/synapse.ts";

/**
 * The Matrix port's contract. Every adapter runs this same suite; the Synapse client joins
 * the list when it exists.
 */
setDefaultTimeout(30_000);
const adapters = matrixAdapters();

for (const adapter of adapters) {
  describe(`Matrix contract: ${adapter.name}`, () => {
    let m: MatrixBackend;
    let close: () => Promise<void>;
    const server = adapter.serverName;
    const alice = `@user-alice:${server}`;
    const bob = `@user-bob:${server}`;
    let n = 0;
    const alias = () => `contract-${Date.now().toString(36)}-${n++}`;

    beforeAll(async () => {
      ({ backend: m, close } = await adapter.open());
      await m.ensureUser(alice);
      await m.ensureUser(bob);
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

    test("ensureUser is idempotent", async () => {
      await m.ensureUser(alice);
      await m.ensureUser(alice);
    });

    test("createRoom gives a !room id on the server and the requested alias; the same creator again gets that room, anyone else M_ROOM_IN_USE", async () => {
      const localpart = alias();
      const request = { aliasLocalpart: localpart, name: "N", topic: null, visibility: "public" as const, isEncrypted: false, isDirect: false };
      const room = await m.createRoom({ creator: alice, ...request });
      // Room ids are opaque: `!…:server` before room version 12, `!…` from it on.
      expect(room.roomId).toMatch(/^![^\s]+$/);
      expect(room.alias).toBe(`#${localpart}:${server}`);
      expect(await m.resolveAlias(room.alias)).toBe(room.roomId);
      expect(await m.resolveAlias(`#${alias()}:${server}`)).toBeNull();
      // A creation whose answer was lost, asked again: the room it made.
      expect(await m.createRoom({ creator: alice, ...request })).toEqual(room);
      expect(await refusal(m.createRoom({ creator: bob, ...request }))).toBe("M_ROOM_IN_USE");
    });

    test("sendEvent is idempotent per txnId, and getEvent returns the full content", async () => {
      const { roomId } = await newRoom();
      const txn = crypto.randomUUID();
      const first = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "once" }, txn);
      const again = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "once" }, txn);
      expect(first.eventId).toMatch(/^\$/);
      expect(again.eventId).toBe(first.eventId);
      const event = await m.getEvent(roomId, first.eventId, alice);
      expect(event).toMatchObject({ event_id: first.eventId, room_id: roomId, sender: alice, type: "m.room.message", content: { msgtype: "m.text", body: "once" } });
      expect(await refusal(m.getEvent(roomId, "$nope", alice))).toBe("M_NOT_FOUND");
    });

    test("getEvent without asUser reads any member's event in a room the service created (as its sync user)", async () => {
      const { roomId } = await newRoom("public");
      await m.join(roomId, bob);
      const { eventId } = await m.sendEvent(roomId, bob, "m.room.message", { msgtype: "m.text", body: "from bob" }, crypto.randomUUID());
      expect(await m.getEvent(roomId, eventId)).toMatchObject({ event_id: eventId, sender: bob, content: { msgtype: "m.text", body: "from bob" } });
    });

    test("sendEvents sends in order, keeps txnIds idempotent, and stops at the first refusal with the prefix sent", async () => {
      const { roomId } = await newRoom("private");
      const text = (body: string, asUser = alice) => ({ asUser, type: "m.room.message", content: { msgtype: "m.text", body }, txnId: crypto.randomUUID() });
      const [a, b, c] = [text("a"), text("b"), text("c")];
      const sent = await m.sendEvents(roomId, [a, b, c]);
      expect(sent.error).toBeUndefined();
      expect(sent.eventIds).toHaveLength(3);
      // The room's timeline, newest first, holds them in the order given.
      const timeline = await m.roomMessages(roomId, { dir: "b", limit: 10 });
      const bodies = timeline.events.filter((e) => e.type === "m.room.message").map((e) => [e.event_id, e.content.body]);
      expect(bodies.slice(0, 3)).toEqual([[sent.eventIds[2], "c"], [sent.eventIds[1], "b"], [sent.eventIds[0], "a"]]);

      // Again with a known txnId first: the same event, not a second one. Bob is not in the
      // room: his event is refused, and the one after it is not sent.
      const d = text("d");
      const after = text("after bob");
      const partial = await m.sendEvents(roomId, [a, d, text("from bob", bob), after]);
      expect(partial.eventIds[0]).toBe(sent.eventIds[0]!);
      expect(partial.eventIds).toHaveLength(2);
      expect(partial.error).toBeInstanceOf(MatrixError);
      expect((partial.error as MatrixError).errcode).toBe("M_FORBIDDEN");
      const now = await m.roomMessages(roomId, { dir: "b", limit: 10 });
      const latest = now.events.filter((e) => e.type === "m.room.message").map((e) => e.content.body);
      expect(latest.slice(0, 4)).toEqual(["d", "c", "b", "a"]);
      expect(await m.getEvent(roomId, partial.eventIds[1]!, alice)).toMatchObject({ content: { body: "d" } });
      expect(await m.sendEvents(roomId, [])).toEqual({ eventIds: [] });
    });

    test("membership gates sending and joining; invite then join works", async () => {
      const { roomId } = await newRoom("private");
      expect(await refusal(m.sendEvent(roomId, bob, "m.room.message", { msgtype: "m.text", body: "x" }, crypto.randomUUID()))).toBe("M_FORBIDDEN");
      expect(await refusal(m.join(roomId, bob))).toBe("M_FORBIDDEN");
      await m.invite(roomId, alice, bob);
      await m.join(roomId, bob);
      const sent = await m.sendEvent(roomId, bob, "m.room.message", { msgtype: "m.text", body: "in" }, crypto.randomUUID());
      expect(sent.eventId).toMatch(/^\$/);
    });

    test("anyone may join a public room", async () => {
      const { roomId } = await newRoom("public");
      const carol = `@user-carol${n++}:${server}`;
      await m.ensureUser(carol);
      await m.join(roomId, carol);
      await m.sendEvent(roomId, carol, "m.room.message", { msgtype: "m.text", body: "hi" }, crypto.randomUUID());
    });

    test("redact empties the event's content, idempotently per txnId", async () => {
      const { roomId } = await newRoom();
      const { eventId } = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "oops" }, crypto.randomUUID());
      const txn = crypto.randomUUID();
      const first = await m.redact(roomId, alice, eventId, txn, "typo");
      const again = await m.redact(roomId, alice, eventId, txn, "typo");
      expect(again.eventId).toBe(first.eventId);
      expect((await m.getEvent(roomId, eventId, alice)).content).toEqual({});
      const redaction = await m.getEvent(roomId, first.eventId, alice);
      expect(redaction.type).toBe("m.room.redaction");
      expect(redaction.redacts).toBe(eventId);
    });

    test("sendState changes room state as a joined member", async () => {
      const { roomId } = await newRoom();
      const { eventId } = await m.sendState(roomId, alice, "m.room.name", "", { name: "Renamed" });
      expect((await m.getEvent(roomId, eventId, alice)).content).toEqual({ name: "Renamed" });
    });

    test("createRoom with roomType m.space makes a space; getStateEvents lists every state key of a type, emptied ones too", async () => {
      const space = await m.createRoom({ creator: alice, aliasLocalpart: alias(), name: "Space", topic: null, visibility: "private", isEncrypted: false, isDirect: false, roomType: "m.space" });
      expect(await m.getState(space.roomId, "m.room.create", "", alice)).toMatchObject({ type: "m.space" });
      const plain = await newRoom();
      expect((await m.getState(plain.roomId, "m.room.create", "", alice))?.type).toBeUndefined();
      const other = await newRoom();
      await m.sendState(space.roomId, alice, "m.space.child", plain.roomId, { via: [server], order: "b" });
      await m.sendState(space.roomId, alice, "m.space.child", other.roomId, { via: [server], order: "a" });
      await m.sendState(space.roomId, alice, "m.space.child", other.roomId, {});
      const children = await m.getStateEvents(space.roomId, "m.space.child", alice);
      expect(children.map((e) => [e.stateKey, e.sender, e.content]).sort()).toEqual(
        [
          [plain.roomId, alice, { via: [server], order: "b" }],
          [other.roomId, alice, {}],
        ].sort(),
      );
      expect(await m.getStateEvents(space.roomId, "m.space.parent", alice)).toEqual([]);
      expect(await refusal(m.getStateEvents(`!nope${Date.now()}:${server}`, "m.space.child", alice))).toBeString();
    });

    test("sync starts from now, then long-polls and returns new events in order", async () => {
      const { roomId } = await newRoom();
      const start = await m.sync(null, 0, new AbortController().signal);
      expect(start.events).toEqual([]);
      // Other rooms on a shared homeserver wake the long-poll too: keep syncing, collecting
      // this room's events, until the ones sent show up (bounded).
      async function collectUntil(since: string, want: string[]): Promise<{ ids: string[]; nextBatch: string }> {
        const ids: string[] = [];
        const deadline = Date.now() + 15000;
        let token = since;
        while (!want.every((w) => ids.includes(w))) {
          if (Date.now() > deadline) throw new Error(`sync never returned ${want.join(", ")}; got ${ids.join(", ")}`);
          const batch = await m.sync(token, 5000, new AbortController().signal);
          ids.push(...batch.events.filter((e) => e.room_id === roomId && e.type === "m.room.message").map((e) => e.event_id));
          token = batch.nextBatch;
        }
        return { ids, nextBatch: token };
      }
      // A long-poll is waiting when the event is sent; it (or a later one) must return it.
      const polling = m.sync(start.nextBatch, 5000, new AbortController().signal);
      const e1 = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "1" }, crypto.randomUUID());
      const woke = await polling;
      const first = woke.events.some((e) => e.event_id === e1.eventId)
        ? { ids: [e1.eventId], nextBatch: woke.nextBatch }
        : await collectUntil(start.nextBatch, [e1.eventId]);
      expect(first.ids).toEqual([e1.eventId]);
      const e2 = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "2" }, crypto.randomUUID());
      const e3 = await m.sendEvent(roomId, alice, "m.room.message", { msgtype: "m.text", body: "3" }, crypto.randomUUID());
      const next = await collectUntil(first.nextBatch, [e2.eventId, e3.eventId]);
      expect(next.ids).toEqual([e2.eventId, e3.eventId]);
      // An aborted long-poll settles at once (with no events, or with an abort error).
      const ctl = new AbortController();
      const started = Date.now();
      const idle = m.sync(next.nextBatch, 30000, ctl.signal);
      ctl.abort();
      const settled = await idle.catch(() => null);
      expect(settled === null || settled.events.filter((e) => e.room_id === roomId).length === 0).toBe(true);
      expect(Date.now() - started).toBeLessThan(5000);
    });

    test("turnServer: TURN REST credentials for the user (`<expiry>:<user id>`, base64 HMAC-SHA1 of it), the configured URIs and lifetime", async () => {
      const before = Math.floor(Date.now() / 1000);
      const turn = await m.turnServer(alice);
      expect(turn).not.toBeNull();
      expect(turn!.uris).toEqual(SYNAPSE_TURN_URIS);
      expect(turn!.ttl).toBe(SYNAPSE_TURN_TTL_S);
      const colon = turn!.username.indexOf(":");
      expect(turn!.username.slice(colon + 1)).toBe(alice);
      const expiry = Number(turn!.username.slice(0, colon));
      expect(expiry).toBeGreaterThanOrEqual(before + SYNAPSE_TURN_TTL_S - 1);
      expect(expiry).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + SYNAPSE_TURN_TTL_S + 1);
      expect(turn!.password).toBe(createHmac("sha1", adapter.turnSecret).update(turn!.username).digest("base64"));
      // Each user gets their own.
      expect((await m.turnServer(bob))!.username.endsWith(`:${bob}`)).toBe(true);
    });

    test("previewUrl: a page's Open Graph data with its image copied to the media repository (mxc), an image link as its image; a private address is refused", async () => {
      const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 4, 0, 0, 0, 2, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde]);
      const pages = Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        fetch: (req) =>
          new URL(req.url).pathname.endsWith(".png")
            ? new Response(png, { headers: { "content-type": "image/png" } })
            : new Response(`<html><head><meta property="og:title" content="Contract page"><meta property="og:description" content="Both adapters"><meta property="og:site_name" content="Site"><meta property="og:image" content="/i.png"></head></html>`, {
                headers: { "content-type": "text/html" },
              }),
      });
      try {
        // A path of its own per run: Synapse keeps previews by URL.
        const page = `http://127.0.0.1:${pages.port}/page-${Date.now().toString(36)}`;
        const og = await m.previewUrl(page, Date.now());
        const mxc = og["og:image"] as string;
        expect(mxc).toMatch(new RegExp(`^mxc://${server}/`));
        expect(og).toMatchObject({ "og:title": "Contract page", "og:description": "Both adapters", "og:site_name": "Site", "og:image:type": "image/png", "matrix:image:size": png.byteLength });
        const media = await m.downloadMedia(mxc);
        expect(new Uint8Array(await new Response(media.body).arrayBuffer())).toEqual(png);
        const image = await m.previewUrl(`http://127.0.0.1:${pages.port}/direct-${Date.now().toString(36)}.png`, Date.now());
        expect(String(image["og:image"])).toMatch(/^mxc:\/\//);
        expect(image["og:image:type"]).toBe("image/png");
        expect(await refusal(m.previewUrl("http://10.0.0.1/admin", Date.now()))).toBe("M_UNKNOWN");
      } finally {
        pages.stop(true);
      }
    });

    test("ping: a live homeserver answers within the readiness timeout", async () => {
      const started = performance.now();
      await m.ping(1000);
      expect(performance.now() - started).toBeLessThan(1000);
    });
  });
}
