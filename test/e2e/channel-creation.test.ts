import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { LostRoomAnswer } from "../helpers/lost-room-answer.ts";
import { reconcileCreations } from "../../src/features/reconcile/orphans.ts";

/**
 * A channel creation cut short between its Matrix room and its channel row (what a kill -9 or
 * a dropped connection leaves), against the local backend and a real Synapse: the retry, or
 * reconcile, finishes it with the room the first attempt made.
 */
setDefaultTimeout(60_000);

function creationSuite(backend: string, env: () => Record<string, string>) {
  describe(`channel creation cut short (${backend})`, () => {
    let server: TestServer;
    const lostAnswer = new LostRoomAnswer();

    beforeAll(async () => {
      server = await startTestServer(env(), { wrapMatrix: lostAnswer.wrap });
    }, 120_000);
    afterAll(() => server?.stop(), 60_000);

    const create = (as: string, slug: string, key?: string) =>
      server.api("/api/messaging/channels", {
        method: "POST",
        as,
        headers: key ? { "idempotency-key": key } : {},
        json: { slug, name: "Cut short", microdao_id: "microdao:daarion", visibility: "public" },
      });

    async function cutShort(as: string, slug: string, key?: string): Promise<{ roomId: string; alias: string }> {
      lostAnswer.armNext();
      const first = await create(as, slug, key);
      expect(first.status).toBe(502);
      expect(lostAnswer.lost).not.toBeNull();
      return lostAnswer.lost!;
    }

    async function channelsWithSlug(slug: string): Promise<Array<{ id: string; matrix_room_id: string }>> {
      const rows = await server.app.deps.sql<{ id: string; matrix_room_id: string }[]>`select id, matrix_room_id from channels where slug = ${slug}`;
      return [...rows];
    }

    test("the retry with the same key finishes it: the first attempt's room becomes the channel", async () => {
      const slug = uniqueSlug("cut");
      const room = await cutShort("user:admin", slug, `create-${slug}`);
      const retry = await create("user:admin", slug, `create-${slug}`);
      expect(retry.status).toBe(201);
      const channel = await retry.json();
      expect(channel.matrix_room_id).toBe(room.roomId);
      expect(channel.matrix_alias).toBe(room.alias);
      expect(await channelsWithSlug(slug)).toEqual([{ id: channel.id, matrix_room_id: room.roomId }]);
      // A send there works: the room is the channel's, with the sync user in it.
      const sent = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "hello" } });
      expect(sent.status).toBe(201);
    });

    test("without a key the same creator's retry finishes it; another creator is 409 SLUG_TAKEN meanwhile", async () => {
      const slug = uniqueSlug("cut");
      const room = await cutShort("user:admin", slug);
      const other = await create("user:mallory", slug);
      expect(other.status).toBe(409);
      expect((await other.json()).error).toBe("SLUG_TAKEN");
      const retry = await create("user:admin", slug);
      expect(retry.status).toBe(201);
      expect((await retry.json()).matrix_room_id).toBe(room.roomId);
      const again = await create("user:admin", slug);
      expect(again.status).toBe(409);
      expect((await channelsWithSlug(slug)).map((c) => c.matrix_room_id)).toEqual([room.roomId]);
    });

    test("reconcile reports the orphan room (our alias, no channel row) and --fix adopts it", async () => {
      const slug = uniqueSlug("orphan");
      const room = await cutShort("user:admin", slug);
      const { deps } = server.app;
      const report = await reconcileCreations(deps, false);
      expect(report.filter((o) => o.slug === slug)).toMatchObject([{ slug, created_by: "user:admin", alias: room.alias, room_id: room.roomId, outcome: null }]);
      expect(await channelsWithSlug(slug)).toEqual([]);

      const fixed = (await reconcileCreations(deps, true)).find((o) => o.slug === slug)!;
      expect(fixed.outcome).toBe("adopted");
      const res = await server.api(`/api/messaging/channels/${fixed.channel_id}`, { as: "user:admin" });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ slug, matrix_room_id: room.roomId, created_by: "user:admin" });
      expect((await reconcileCreations(deps, false)).filter((o) => o.slug === slug)).toEqual([]);
    });

    if (backend === "synapse") {
      test("an Element user joining by the alias lands in the adopted room", async () => {
        const slug = uniqueSlug("cut");
        const room = await cutShort("user:admin", slug, `create-${slug}`);
        const channel = await (await create("user:admin", slug, `create-${slug}`)).json();
        const bob = await registerRealUser("bob");
        const client = await elementClient(bob);
        try {
          const joined = await client.joinRoom(room.alias);
          expect(joined.roomId).toBe(channel.matrix_room_id);
        } finally {
          client.stopClient();
        }
      });
    }
  });
}

creationSuite("local", () => ({}));
if (!synapseMissing()) creationSuite("synapse", () => synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
