import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "nats";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { PublishedLog } from "../helpers/published.ts";
import { natsUrl, serviceMissing } from "../helpers/services.ts";
import { localMatrixClient } from "../helpers/local-matrix-user.ts";

/**
 * Mentions on the embedded default (the local Matrix backend): sends through the API that
 * mention members (m.mentions and pills in Matrix, the index, frames, NATS), messages from a
 * Matrix client with m.mentions, and GET /api/messaging/mentions.
 */
setDefaultTimeout(30_000);

let server: TestServer;
const log = new PublishedLog();
const published = log.events;

beforeAll(async () => {
  server = await startTestServer();
  log.record(server.app.deps.events);
}, 60000);
afterAll(() => server?.stop(), 60000);

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
const send = (channelId: string, as: string, json: Record<string, unknown>) => api(`/${channelId}/messages`, { method: "POST", as, json });
const post = async (channelId: string, as: string, json: Record<string, unknown>) => {
  const res = await send(channelId, as, json);
  expect(res.status).toBe(201);
  return res.json();
};
const invite = async (channelId: string, memberId: string, extra: Record<string, unknown> = {}) =>
  expect((await api(`/${channelId}/members`, { method: "POST", as: "user:owner", json: { member_id: memberId, ...extra } })).status).toBe(201);
const mentionsOf = (as: string, query = "") => server.api(`/api/messaging/mentions${query}`, { as });
const matrixEvent = async (eventId: string) => {
  const [row] = await server.app.deps.sql`select sender, content from local_matrix_events where event_id = ${eventId}`;
  return row as { sender: string; content: Record<string, any> };
};
const mentionRows = async (messageId: string) => [
  ...(await server.app.deps.sql`select member_id, seq::int as seq from message_mentions where message_id = ${messageId} order by member_id`),
];
const agentEvents = (messageId: string) => published.filter((e) => e.subject === "messaging.agent.mentioned" && (e.payload as any).message_id === messageId);

const nextPublished = (subject: string, pred: (payload: any) => boolean, timeoutMs = 5000) => log.next(subject, pred, timeoutMs);

const matrixClientIn = (roomId: string, localpart = "dora") => localMatrixClient(server, roomId, localpart);

describe("mentions from the API", () => {
  test("@member ids in the text and the mentions list: m.mentions and pills in Matrix, the view, the frame, one agent.mentioned per agent", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "private" });
    await invite(channel.id, "user:alice");
    await invite(channel.id, "agent:sofia");
    await invite(channel.id, "user:bob");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);

    const text = "@agent:sofia, what did @user:zed and @user:alice <say>? cc @user:owner.";
    const res = await send(channel.id, "user:owner", { text, mentions: ["user:bob"] });
    expect(res.status).toBe(201);
    const message = await res.json();
    // user:zed is no member: plain text. The sender never mentions themselves.
    expect(message.mentions).toEqual(["agent:sofia", "user:alice", "user:bob"]);
    const event = await matrixEvent(message.matrix_event_id);
    expect(event.content).toEqual({
      msgtype: "m.text",
      body: text,
      "m.mentions": { user_ids: ["@agent-sofia:daarion.city", "@user-alice:daarion.city", "@user-bob:daarion.city"] },
      format: "org.matrix.custom.html",
      formatted_body:
        '<a href="https://matrix.to/#/@agent-sofia:daarion.city">@agent:sofia</a>, what did @user:zed and ' +
        '<a href="https://matrix.to/#/@user-alice:daarion.city">@user:alice</a> &lt;say&gt;? cc @user:owner.',
    });
    expect(await inbox.nextJson()).toMatchObject({ type: "message.created", message: { id: message.id, mentions: ["agent:sofia", "user:alice", "user:bob"] } });
    inbox.close();

    expect(await nextPublished("messaging.agent.mentioned", (p) => p.message_id === message.id)).toEqual({
      event_id: `agent.mentioned:${message.id}:agent:sofia`,
      agent_id: "agent:sofia",
      channel_id: channel.id,
      microdao_id: "microdao:daarion",
      message_id: message.id,
      seq: message.seq,
      matrix_event_id: message.matrix_event_id,
      sender_id: "user:owner",
      sender_type: "human",
      preview: text,
      thread_id: null,
      mentions: ["agent:sofia", "user:alice", "user:bob"],
      created_at: message.created_at,
    });
    expect(agentEvents(message.id)).toHaveLength(1);
    expect(await mentionRows(message.id)).toEqual([
      { member_id: "agent:sofia", seq: message.seq },
      { member_id: "user:alice", seq: message.seq },
      { member_id: "user:bob", seq: message.seq },
    ]);
    const [listed] = await (await api(`/${channel.id}/messages?limit=1`, { as: "user:alice" })).json();
    expect(listed.mentions).toEqual(["agent:sofia", "user:alice", "user:bob"]);
    expect((await (await api(`/${channel.id}/messages/${message.id}`, { as: "user:alice" })).json()).mentions).toEqual(["agent:sofia", "user:alice", "user:bob"]);
  });

  test("the sender's HTML keeps its markup and links; mentions become pills only in its text; no mention, no m.mentions", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    await invite(channel.id, "agent:sofia");
    const message = await post(channel.id, "user:owner", {
      text: "**hi** @agent:sofia see @agent:sofia",
      formatted_body: '<b>hi</b> @agent:sofia see <a href="https://example.org/@agent:sofia">@agent:sofia</a><script>x</script>',
    });
    expect((await matrixEvent(message.matrix_event_id)).content).toMatchObject({
      "m.mentions": { user_ids: ["@agent-sofia:daarion.city"] },
      formatted_body: '<b>hi</b> <a href="https://matrix.to/#/@agent-sofia:daarion.city">@agent:sofia</a> see <a href="https://example.org/@agent:sofia">@agent:sofia</a>',
    });
    const plain = await post(channel.id, "user:owner", { text: "mail me at me@agent:sofia or @agent:nobody" });
    expect(plain.mentions).toEqual([]);
    expect((await matrixEvent(plain.matrix_event_id)).content).toEqual({ msgtype: "m.text", body: "mail me at me@agent:sofia or @agent:nobody" });
    expect(agentEvents(plain.id)).toHaveLength(0);
  });

  test("an agent's post mentions too; a listed non-member is 400 INVALID_MENTION and writes nothing", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    await invite(channel.id, "agent:sofia");
    await invite(channel.id, "agent:max");
    await invite(channel.id, "user:mute", { can_read: false });
    const posted = await server.api(`/internal/agents/agent:sofia/post-to-channel`, {
      method: "POST",
      json: { channel_id: channel.id, text: "@agent:max over to you, @user:owner" },
    });
    expect(posted.status).toBe(200);
    const { message } = await posted.json();
    expect(message.mentions).toEqual(["agent:max", "user:owner"]);
    expect(await nextPublished("messaging.agent.mentioned", (p) => p.message_id === message.id)).toMatchObject({ agent_id: "agent:max", sender_id: "agent:sofia", sender_type: "agent" });

    const before = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channel.id}`;
    for (const mentions of [["user:stranger"], ["user:mute"], ["agent:sofia", "user:nobody"]]) {
      const res = await send(channel.id, "user:owner", { text: "hello", mentions });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBe("INVALID_MENTION");
    }
    const bad = await send(channel.id, "user:owner", { text: "hello", mentions: ["not an id"] });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toBe("VALIDATION_FAILED");
    const after = await server.app.deps.sql`select count(*)::int as n from messages where channel_id = ${channel.id}`;
    expect(after[0]!.n).toBe(before[0]!.n);
    // A member without can_read in the text stays plain text.
    expect((await post(channel.id, "user:owner", { text: "@user:mute hi" })).mentions).toEqual([]);
  });

  test("a send retried with its Idempotency-Key mentions once: one message, one agent.mentioned", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    await invite(channel.id, "agent:sofia");
    const again = () =>
      api(`/${channel.id}/messages`, { method: "POST", as: "user:owner", json: { text: "@agent:sofia once" }, headers: { "Idempotency-Key": `k-${channel.id}` } });
    const first = await (await again()).json();
    const second = await again();
    expect((await second.json()).id).toBe(first.id);
    await nextPublished("messaging.agent.mentioned", (p) => p.message_id === first.id);
    await nextPublished("messaging.message.created", (p) => p.message_id === first.id);
    expect(agentEvents(first.id)).toHaveLength(1);
    expect(await mentionRows(first.id)).toEqual([{ member_id: "agent:sofia", seq: first.seq }]);
  });
});

describe("mentions from a Matrix client", () => {
  test("m.mentions.user_ids is indexed, mapped to member ids; non-members, the sender and @room are no mentions", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    await invite(channel.id, "agent:sofia");
    await invite(channel.id, "user:alice");
    const dora = await matrixClientIn(channel.matrix_room_id);
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const eventId = await dora.send({
      msgtype: "m.text",
      body: "Sofia, Alice: look",
      "m.mentions": { user_ids: ["@agent-sofia:daarion.city", "@user-alice:daarion.city", "@user-stranger:daarion.city", dora.id, 42], room: true },
    });
    const frame = await inbox.nextOfType("message.created");
    inbox.close();
    expect(frame.message).toMatchObject({ matrix_event_id: eventId, sender_id: `matrix:${dora.id}`, mentions: ["agent:sofia", "user:alice"] });
    const payload = await nextPublished("messaging.agent.mentioned", (p) => p.matrix_event_id === eventId);
    expect(payload).toMatchObject({
      event_id: `agent.mentioned:${frame.message.id}:agent:sofia`,
      agent_id: "agent:sofia",
      channel_id: channel.id,
      sender_id: `matrix:${dora.id}`,
      preview: "Sofia, Alice: look",
      seq: frame.message.seq,
    });
    expect(agentEvents(frame.message.id)).toHaveLength(1);
    // message.created of a message from Matrix is published with it, once.
    expect(published.filter((e) => e.subject === "messaging.message.created" && (e.payload as any).message_id === frame.message.id)).toHaveLength(1);
    const [mention] = await (await mentionsOf("user:alice", `?channel_id=${channel.id}`)).json();
    expect(mention).toMatchObject({ id: frame.message.id, sender_id: `matrix:${dora.id}`, content_preview: "Sofia, Alice: look" });

    // An empty m.mentions (a client that supports intentional mentions, mentioning no one).
    const plain = await dora.send({ msgtype: "m.text", body: "no one", "m.mentions": {} });
    await nextPublished("messaging.message.created", (p) => p.matrix_event_id === plain);
    expect((await server.app.deps.sql`select mentions from messages where matrix_event_id = ${plain}`)[0]!.mentions).toEqual([]);
  });
});

describe("edits", () => {
  test("an API edit's mentions replace the message's; the edit event mentions only the newly mentioned; only new agents get agent.mentioned", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    for (const id of ["agent:sofia", "agent:max", "user:alice"]) await invite(channel.id, id);
    const message = await post(channel.id, "user:owner", { text: "@agent:sofia and @user:alice" });
    expect(agentEvents(message.id).map((e) => (e.payload as any).agent_id)).toEqual(["agent:sofia"]);

    const res = await api(`/${channel.id}/messages/${message.id}`, { method: "PATCH", as: "user:owner", json: { text: "@agent:sofia and @agent:max" } });
    expect(res.status).toBe(200);
    expect((await res.json()).mentions).toEqual(["agent:sofia", "agent:max"]);
    const [edit] = await server.app.deps.sql`
      select content from local_matrix_events where room_id = ${channel.matrix_room_id} and content->'m.relates_to'->>'rel_type' = 'm.replace'`;
    expect(edit!.content).toMatchObject({
      body: "* @agent:sofia and @agent:max",
      "m.mentions": { user_ids: ["@agent-max:daarion.city"] },
      formatted_body: '* <a href="https://matrix.to/#/@agent-sofia:daarion.city">@agent:sofia</a> and <a href="https://matrix.to/#/@agent-max:daarion.city">@agent:max</a>',
      "m.new_content": {
        body: "@agent:sofia and @agent:max",
        "m.mentions": { user_ids: ["@agent-sofia:daarion.city", "@agent-max:daarion.city"] },
      },
    });
    expect(await nextPublished("messaging.agent.mentioned", (p) => p.message_id === message.id && p.agent_id === "agent:max")).toMatchObject({
      event_id: `agent.mentioned:${message.id}:agent:max:v2`,
      preview: "@agent:sofia and @agent:max",
      mentions: ["agent:sofia", "agent:max"],
    });
    expect(agentEvents(message.id)).toHaveLength(2);
    expect((await mentionRows(message.id)).map((r) => r.member_id)).toEqual(["agent:max", "agent:sofia"]);
    expect(await (await mentionsOf("user:alice", `?channel_id=${channel.id}`)).json()).toEqual([]);
  });

  test("a Matrix client's edit: m.new_content's m.mentions replaces them; an edit without m.mentions leaves them", async () => {
    const channel = await createChannel(server, "user:owner", { visibility: "public" });
    for (const id of ["agent:sofia", "user:alice"]) await invite(channel.id, id);
    const dora = await matrixClientIn(channel.matrix_room_id);
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:owner`);
    const original = await dora.send({ msgtype: "m.text", body: "hi Alice", "m.mentions": { user_ids: ["@user-alice:daarion.city"] } });
    const created = await inbox.nextOfType("message.created");
    expect(created.message.mentions).toEqual(["user:alice"]);
    const replace = (body: string, mentions?: string[]) =>
      dora.send({
        msgtype: "m.text",
        body: `* ${body}`,
        ...(mentions ? { "m.mentions": { user_ids: mentions } } : {}),
        "m.new_content": { msgtype: "m.text", body, ...(mentions ? { "m.mentions": { user_ids: mentions } } : {}) },
        "m.relates_to": { rel_type: "m.replace", event_id: original },
      });
    await replace("hi Sofia", ["@agent-sofia:daarion.city"]);
    expect((await inbox.nextOfType("message.updated")).message.mentions).toEqual(["agent:sofia"]);
    expect(await nextPublished("messaging.agent.mentioned", (p) => p.message_id === created.message.id)).toMatchObject({
      event_id: `agent.mentioned:${created.message.id}:agent:sofia:v2`,
      preview: "hi Sofia",
    });
    await replace("hi again");
    expect((await inbox.nextOfType("message.updated")).message).toMatchObject({ content_preview: "hi again", mentions: ["agent:sofia"] });
    inbox.close();
    expect(agentEvents(created.message.id)).toHaveLength(1);
    expect((await mentionRows(created.message.id)).map((r) => r.member_id)).toEqual(["agent:sofia"]);
  });
});

describe("GET /api/messaging/mentions", () => {
  test("newest first across channels, paged with X-Next-Cursor; deleted messages and channels the caller may no longer read drop out", async () => {
    const open = await createChannel(server, "user:owner", { visibility: "public" });
    const closed = await createChannel(server, "user:owner", { visibility: "private" });
    await invite(closed.id, "user:carol");
    await post(open.id, "user:carol", { text: "hi" }); // carol's first write joins her
    const a = await post(open.id, "user:owner", { text: "one @user:carol" });
    const b = await post(closed.id, "user:owner", { text: "two @user:carol" });
    const reply = await post(open.id, "user:owner", { text: "three, in a thread", thread_id: a.id, mentions: ["user:carol"] });
    const d = await post(open.id, "user:owner", { text: "four @user:carol" });

    const first = await mentionsOf("user:carol", "?limit=2");
    expect(first.status).toBe(200);
    const firstPage = await first.json();
    expect(firstPage.map((m: { id: string }) => m.id)).toEqual([d.id, reply.id]);
    expect(firstPage[0]).toMatchObject({ channel_id: open.id, content_preview: "four @user:carol", mentions: ["user:carol"], mentioned_at: d.created_at });
    const cursor = first.headers.get("x-next-cursor");
    expect(cursor).toMatch(/^[0-9]+$/);
    const second = await mentionsOf("user:carol", `?limit=2&cursor=${cursor}`);
    expect((await second.json()).map((m: { id: string }) => m.id)).toEqual([b.id, a.id]);
    const last = await mentionsOf("user:carol", `?limit=2&cursor=${second.headers.get("x-next-cursor")}`);
    expect(await last.json()).toEqual([]);
    expect(last.headers.get("x-next-cursor")).toBeNull();
    expect((await (await mentionsOf("user:carol", `?channel_id=${closed.id}`)).json()).map((m: { id: string }) => m.id)).toEqual([b.id]);
    // Nobody else sees carol's mentions.
    expect(await (await mentionsOf("user:erin")).json()).toEqual([]);

    // Deleted: gone from the list, and the message no longer shows its mentions.
    const deleted = await (await api(`/${open.id}/messages/${d.id}`, { method: "DELETE", as: "user:owner" })).json();
    expect(deleted).toMatchObject({ message_id: d.id });
    expect((await server.app.deps.sql`select mentions from messages where id = ${d.id}`)[0]!.mentions).toEqual([]);
    expect(await mentionRows(d.id)).toEqual([]);
    // Kicked from the private channel: its mentions are no longer hers to read.
    expect((await api(`/${closed.id}/members/user:carol`, { method: "DELETE", as: "user:owner" })).status).toBe(200);
    expect((await (await mentionsOf("user:carol")).json()).map((m: { id: string }) => m.id)).toEqual([reply.id, a.id]);
    expect((await mentionsOf("user:carol", `?channel_id=${closed.id}`)).status).toBe(404);

    expect((await mentionsOf("user:carol", "?cursor=abc")).status).toBe(400);
    expect((await mentionsOf("user:carol", "?limit=0")).status).toBe(400);
    expect((await server.api("/api/messaging/mentions")).status).toBe(401);
  });
});

describe("API documents", () => {
  test("/docs/json has GET /api/messaging/mentions and the send's mentions; /docs/asyncapi.json has messaging.agent.mentioned", async () => {
    const openapi = await (await server.api("/docs/json")).json();
    const get = openapi.paths["/api/messaging/mentions"].get;
    expect(get.responses["200"]).toBeDefined();
    expect(get.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(["limit", "cursor", "channel_id"]));
    expect(JSON.stringify(openapi.paths["/api/messaging/channels/{id}/messages"].post.requestBody)).toContain("INVALID_MENTION");
    const asyncapi = await (await server.api("/docs/asyncapi.json")).json();
    const payload = asyncapi.components.messages["messaging.agent.mentioned"].payload;
    expect(Object.keys(payload.properties)).toEqual(expect.arrayContaining(["event_id", "agent_id", "channel_id", "message_id", "seq", "sender_id", "preview", "mentions"]));
    expect(asyncapi.channels["messaging.agent.mentioned"].address).toBe("messaging.agent.mentioned");
  });
});

describe.skipIf(serviceMissing("NATS_URL"))("on the NATS broker", () => {
  test("messaging.agent.mentioned reaches NATS once per mentioned agent, with the message's event id", async () => {
    const nc = await connect({ servers: natsUrl! });
    try {
      const sub = nc.subscribe("messaging.agent.mentioned");
      const channel = await createChannel(server, "user:owner", { visibility: "public" });
      await invite(channel.id, "agent:sofia");
      await invite(channel.id, "agent:max");
      const message = await post(channel.id, "user:owner", { text: "@agent:sofia and @agent:max" });
      const seen: any[] = [];
      const timer = setTimeout(() => sub.unsubscribe(), 10000);
      for await (const m of sub) {
        const data = m.json<any>();
        if (data.message_id !== message.id) continue;
        seen.push(data);
        if (seen.length === 2) break;
      }
      clearTimeout(timer);
      expect(seen.map((e) => e.event_id).sort()).toEqual([`agent.mentioned:${message.id}:agent:max`, `agent.mentioned:${message.id}:agent:sofia`]);
    } finally {
      await nc.close();
    }
  });
});
