import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import type { PublishedEvent } from "../../src/events/bus.ts";

let server: TestServer;
const published: PublishedEvent[] = [];
beforeAll(async () => {
  server = await startTestServer();
  server.app.deps.events.subscribe((e) => published.push(e));
}, 60000);
afterAll(() => server?.stop(), 60000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
const send = async (channelId: string, as: string, text: string) =>
  (await (await api(`/${channelId}/messages`, { method: "POST", as, json: { text } })).json()) as { id: string; matrix_event_id: string };
const pin = (channelId: string, as: string, messageId: string) => api(`/${channelId}/pins`, { method: "POST", as, json: { message_id: messageId } });
const unpin = (channelId: string, as: string, messageId: string) => api(`/${channelId}/pins/${messageId}`, { method: "DELETE", as });
const pinsOf = async (channelId: string, as = "user:owner") => (await (await api(`/${channelId}/pins`, { as })).json()) as Array<{ message_id: string; pinned_by: string; message: { content_preview: string } }>;
const mx = (id: string) => `@${id.replace(":", "-")}:daarion.city`;
async function pinnedState(roomId: string) {
  const [row] = await server.app.deps.sql`
    select e.sender, s.content from local_matrix_state s join local_matrix_events e on e.event_id = s.event_id
    where s.room_id = ${roomId} and s.type = 'm.room.pinned_events' and s.state_key = ''`;
  return row as { sender: string; content: { pinned: string[] } } | undefined;
}
const audit = async (channelId: string): Promise<unknown[]> => [
  ...(await server.app.deps.sql`
    select event_type, actor_id, target_id, metadata from channel_events
    where channel_id = ${channelId} and event_type like 'message.%' order by position`),
];

describe("pins", () => {
  test("pin and unpin: m.room.pinned_events, frames, NATS, audit, listing", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "private" });
    await api(`/${channel.id}/members`, { method: "POST", as: "user:owner", json: { member_id: "user:alice" } });
    const first = await send(channel.id, "user:owner", "the rules");
    const second = await send(channel.id, "user:alice", "the agenda");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);

    const res = await pin(channel.id, "user:alice", first.id);
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ message_id: first.id, matrix_event_id: first.matrix_event_id, pinned_by: "user:alice", message: { content_preview: "the rules" } });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.pinned", pin: { message_id: first.id, pinned_by: "user:alice" } });
    // alice has no power for room state: the creator's account writes the list for her.
    expect(await pinnedState(channel.matrix_room_id)).toEqual({ sender: mx("user:owner"), content: { pinned: [first.matrix_event_id] } });
    expect((await pin(channel.id, "user:owner", second.id)).status).toBe(201);
    await inbox.nextJson();
    expect((await pinnedState(channel.matrix_room_id))!.content.pinned).toEqual([first.matrix_event_id, second.matrix_event_id]);
    expect((await pinsOf(channel.id, "user:alice")).map((p) => p.message.content_preview)).toEqual(["the agenda", "the rules"]);

    const again = await pin(channel.id, "user:owner", first.id);
    expect(again.status).toBe(409);
    expect((await again.json()).error).toBe("ALREADY_PINNED");

    expect((await unpin(channel.id, "user:alice", first.id)).status).toBe(204);
    expect(await inbox.nextJson()).toEqual({ seq: 2, type: "message.unpinned", message_id: first.id, matrix_event_id: first.matrix_event_id, unpinned_by: "user:alice" });
    inbox.close();
    expect((await pinnedState(channel.matrix_room_id))!.content.pinned).toEqual([second.matrix_event_id]);
    expect((await pinsOf(channel.id)).map((p) => p.message_id)).toEqual([second.id]);
    expect((await unpin(channel.id, "user:alice", first.id)).status).toBe(404);

    expect(await audit(channel.id)).toEqual([
      { event_type: "message.pinned", actor_id: "user:alice", target_id: first.id, metadata: { via: "api" } },
      { event_type: "message.pinned", actor_id: "user:owner", target_id: second.id, metadata: { via: "api" } },
      { event_type: "message.unpinned", actor_id: "user:alice", target_id: first.id, metadata: { via: "api" } },
    ]);
    const subjects = published.filter((e) => (e.payload as { channel_id?: string }).channel_id === channel.id && e.subject.startsWith("messaging.message.") && e.subject !== "messaging.message.created");
    expect(subjects.map((e) => [e.subject, (e.payload as { message_id: string }).message_id])).toEqual([
      ["messaging.message.pinned", first.id],
      ["messaging.message.pinned", second.id],
      ["messaging.message.unpinned", first.id],
    ]);
  });

  test("who may pin; unknown messages; refusals change nothing", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    const other = await createChannel(server, "user:owner", { visibility: "public" });
    await api(`/${channel.id}/members`, { method: "POST", as: "user:owner", json: { member_id: "user:muted", can_write: false } });
    const message = await send(channel.id, "user:owner", "pin me");
    const elsewhere = await send(other.id, "user:owner", "not here");
    const cases: Array<[string, string, number]> = [
      ["user:passerby", message.id, 403], // public readers must be members to pin
      ["user:muted", message.id, 403],
      ["user:owner", crypto.randomUUID(), 404],
      ["user:owner", elsewhere.id, 404],
    ];
    for (const [caller, id, status] of cases) expect([caller, (await pin(channel.id, caller, id)).status]).toEqual([caller, status]);
    expect((await pin(channel.id, "user:owner", "nope")).status).toBe(400);
    const extra = await api(`/${channel.id}/pins`, { method: "POST", as: "user:owner", json: { message_id: message.id, x: 1 } });
    expect(extra.status).toBe(400);
    expect(await pinnedState(channel.matrix_room_id)).toBeUndefined();
    expect(await pinsOf(channel.id)).toEqual([]);
    const secret = await createChannel(server, "user:owner", { visibility: "private" });
    expect((await api(`/${secret.id}/pins`, { as: "user:passerby" })).status).toBe(404);
  });

  test("pins changed in a Matrix client sync back (old and new lists diffed)", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    const a = await send(channel.id, "user:owner", "alpha");
    const b = await send(channel.id, "user:owner", "beta");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const { matrix } = server.app.deps;
    await matrix.sendState(channel.matrix_room_id, mx("user:owner"), "m.room.pinned_events", "", { pinned: [a.matrix_event_id, b.matrix_event_id, "$unknown"] });
    const frames = [await inbox.nextJson(), await inbox.nextJson()];
    expect(frames.map((f) => [f.type, f.pin.message_id, f.pin.pinned_by]).sort()).toEqual(
      [["message.pinned", a.id, "user:owner"], ["message.pinned", b.id, "user:owner"]].sort(),
    );
    await matrix.sendState(channel.matrix_room_id, mx("user:owner"), "m.room.pinned_events", "", { pinned: [b.matrix_event_id] });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.unpinned", message_id: a.id, unpinned_by: "user:owner" });
    inbox.close();
    expect((await pinsOf(channel.id)).map((p) => p.message_id)).toEqual([b.id]);
    expect((await audit(channel.id)).map((r: any) => [r.event_type, r.metadata.via])).toEqual([
      ["message.pinned", "matrix"],
      ["message.pinned", "matrix"],
      ["message.unpinned", "matrix"],
    ]);
  });
});
