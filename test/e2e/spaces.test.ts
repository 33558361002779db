import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { nextRoomEvent } from "../helpers/room-events.ts";

setDefaultTimeout(90_000);

type Hierarchy = { rooms: Array<{ room_id: string; room_type?: string; name?: string; children_state: Array<{ state_key: string; content: { via?: string[]; order?: string } }> }> };

describe.skipIf(synapseMissing())("a microDAO is a Matrix space, seen from Element (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;
  const microdao = `microdao:e2esp${Date.now().toString(36)}`;
  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging${path}`, init);
  const spaceUser = () => `@daarion-space:${synapse!.serverName}`;
  // What the service's space user does in Matrix, as the application service.
  const asSpaceUser = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${synapse!.url}/_matrix/client/v3${path}${path.includes("?") ? "&" : "?"}user_id=${encodeURIComponent(spaceUser())}`, {
      method,
      headers: { authorization: `Bearer ${synapse!.asToken}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  };

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  test("the Element user sees the space's channels in order, joins it, sees groups, archives and a private channel left out; a room the user adds is reported", async () => {
    const general = await createChannel(server, "user:owner", { microdao_id: microdao, visibility: "public", name: "General" });
    const random = await createChannel(server, "user:owner", { microdao_id: microdao, visibility: "public", name: "Random" });
    const secret = await createChannel(server, "user:owner", { microdao_id: microdao, visibility: "private", name: "Secret" });
    const space = await (await api(`/microdaos/${microdao}/space`, { as: "user:owner" })).json();
    expect(space.channels.map((c: { id: string }) => c.id)).toEqual([general.id, random.id, secret.id]);
    // Put Random first: an order of its own.
    expect((await api(`/microdaos/${microdao}/space/channels/${random.id}`, { method: "PATCH", as: "user:owner", json: { order: "0" } })).status).toBe(200);

    // Bob is in a public channel, which the space's restricted join rule allows: he reads its hierarchy.
    await client.joinRoom(general.matrix_alias);
    const hierarchy = (await client.getRoomHierarchy(space.matrix_room_id, 50, 2)) as unknown as Hierarchy;
    const top = hierarchy.rooms[0]!;
    expect(top).toMatchObject({ room_id: space.matrix_room_id, room_type: "m.space", name: microdao.slice(9) });
    const kids = top.children_state.filter((e) => Array.isArray(e.content.via));
    expect(kids.map((e) => e.state_key).sort()).toEqual([general.matrix_room_id, random.matrix_room_id].sort());
    expect(kids.every((e) => e.content.via!.includes(synapse!.serverName))).toBe(true);
    // Synapse walks the children in the spec's order: Random ("0") before General.
    const rooms = hierarchy.rooms.map((r) => r.room_id);
    expect(rooms.indexOf(random.matrix_room_id)).toBeLessThan(rooms.indexOf(general.matrix_room_id));
    expect(rooms).not.toContain(secret.matrix_room_id);

    // Bob joins the space; the channel names it as its parent.
    await client.joinRoom(space.matrix_room_id);
    const parent = await client.getStateEvent(general.matrix_room_id, "m.space.parent" as never, space.matrix_room_id);
    expect(parent).toMatchObject({ canonical: true, via: [synapse!.serverName] });

    // A group: a sub-space with General in it, seen from the client.
    const groupSeen = nextRoomEvent(client, space.matrix_room_id, (e) => e.getType() === "m.space.child" && Array.isArray(e.getContent().via) && e.getContent().order === "m");
    const work = await (await api(`/microdaos/${microdao}/groups`, { method: "POST", as: "user:owner", json: { name: "Work", order: "m" } })).json();
    expect((await groupSeen).getStateKey()).toBe(work.matrix_room_id);
    const leftSpace = nextRoomEvent(client, space.matrix_room_id, (e) => e.getType() === "m.space.child" && e.getStateKey() === general.matrix_room_id && !e.getContent().via);
    expect((await api(`/microdaos/${microdao}/space/channels/${general.id}`, { method: "PATCH", as: "user:owner", json: { group_id: work.id } })).status).toBe(200);
    await leftSpace;
    const deeper = (await client.getRoomHierarchy(space.matrix_room_id, 50, 2)) as unknown as Hierarchy;
    const group = deeper.rooms.find((r) => r.room_id === work.matrix_room_id)!;
    expect(group).toMatchObject({ room_type: "m.space", name: "Work" });
    expect(group.children_state.filter((e) => Array.isArray(e.content.via)).map((e) => e.state_key)).toEqual([general.matrix_room_id]);

    // The renamed group, as the client sees it.
    const renamed = nextRoomEvent(client, space.matrix_room_id, (e) => e.getType() === "m.space.child" && e.getStateKey() === work.matrix_room_id && e.getContent().order === "a");
    expect((await api(`/microdaos/${microdao}/groups/${work.id}`, { method: "PATCH", as: "user:owner", json: { name: "Projects", order: "a" } })).status).toBe(200);
    await renamed;
    expect(((await client.getRoomHierarchy(space.matrix_room_id, 50, 2)) as unknown as Hierarchy).rooms.find((r) => r.room_id === work.matrix_room_id)?.name).toBe("Projects");

    // Archiving Random takes it out of the space.
    const archived = nextRoomEvent(client, space.matrix_room_id, (e) => e.getType() === "m.space.child" && e.getStateKey() === random.matrix_room_id && !e.getContent().via);
    expect((await api(`/channels/${random.id}`, { method: "DELETE", as: "user:owner" })).status).toBe(200);
    await archived;

    // An Element admin of the space (made so by the space's creator) adds a room of his own.
    const levels = await asSpaceUser("GET", `/rooms/${encodeURIComponent(space.matrix_room_id)}/state/m.room.power_levels/`);
    await asSpaceUser("PUT", `/rooms/${encodeURIComponent(space.matrix_room_id)}/state/m.room.power_levels/`, {
      ...levels,
      users: { ...(levels.users as Record<string, number>), [bob.userId]: 50 },
    });
    const own = await client.createRoom({ name: "Bob's corner" });
    const reported = new Promise<Record<string, unknown>>((resolve) => {
      const off = server.app.deps.events.subscribe((e) => {
        if (e.subject !== "messaging.space.child_reported" || (e.payload as { room_id: string }).room_id !== own.room_id) return;
        off();
        resolve(e.payload as Record<string, unknown>);
      });
    });
    await client.sendStateEvent(space.matrix_room_id, "m.space.child" as never, { via: [synapse!.serverName] } as never, own.room_id);
    const view = await (await api(`/microdaos/${microdao}/space`, { as: "user:owner" })).json();
    expect(view.foreign_children).toEqual([{ room_id: own.room_id, parent_room_id: space.matrix_room_id, order: null, via: [synapse!.serverName], added_by: bob.userId }]);
    // It came back through /sync and was reported at once, on NATS.
    expect(await Promise.race([reported, Bun.sleep(20000).then(() => null)])).toMatchObject({
      microdao_id: microdao,
      space_room_id: space.matrix_room_id,
      room_id: own.room_id,
      added_by: bob.userId,
      via: [synapse!.serverName],
      order: null,
    });
    // Reported, not indexed: no channel has that room.
    const channels = await (await api(`/channels?microdao_id=${microdao}&include_archived=true`, { as: "user:owner" })).json();
    expect(channels.map((c: { matrix_room_id: string }) => c.matrix_room_id)).not.toContain(own.room_id);
    expect(channels.length).toBe(3);
  });

  test("two first channels created at once make one space on Synapse", async () => {
    const other = `microdao:e2esq${Date.now().toString(36)}`;
    const [a, b] = await Promise.all([
      createChannel(server, "user:owner", { microdao_id: other }),
      createChannel(server, "user:second", { microdao_id: other }),
    ]);
    const alias = `#space_${other.slice(9)}:${synapse!.serverName}`;
    const spaceRoom = ((await asSpaceUser("GET", `/directory/room/${encodeURIComponent(alias)}`)) as { room_id: string }).room_id;
    const joined = ((await asSpaceUser("GET", "/joined_rooms")) as { joined_rooms: string[] }).joined_rooms;
    const named: string[] = [];
    for (const room of joined) {
      const name = await asSpaceUser("GET", `/rooms/${encodeURIComponent(room)}/state/m.room.name/`).catch(() => null);
      if (name?.name === other.slice(9)) named.push(room);
    }
    expect(named).toEqual([spaceRoom]);
    for (const channel of [a, b]) {
      const child = await asSpaceUser("GET", `/rooms/${encodeURIComponent(spaceRoom)}/state/m.space.child/${encodeURIComponent(channel.matrix_room_id)}`);
      expect(child).toMatchObject({ via: [synapse!.serverName] });
    }
  });
});
