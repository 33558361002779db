import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv, nextRoomEvent } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { PublishedLog } from "../helpers/published.ts";

/** Mentions between the REST API and a Matrix client (matrix-js-sdk, the Element user) on a real Synapse. */
setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("Mentions (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;
  const log = new PublishedLog();
  const published = log.events;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    log.record(server.app.deps.events);
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
  }, 120000);

  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
  const server_ = () => server.app.deps.matrix.serverName;
  const mx = (id: string) => `@${id.replace(":", "-")}:${server_()}`;

  const nextPublished = (subject: string, pred: (payload: any) => boolean, timeoutMs = 20000) => log.next(subject, pred, timeoutMs);

  async function channelWithBob() {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    for (const member_id of ["agent:sofia", "user:alice"]) {
      expect((await api(`/${channel.id}/members`, { method: "POST", as: "user:admin", json: { member_id } })).status).toBe(201);
    }
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    for (;;) {
      const frame = await inbox.nextJson(20000);
      if (frame.type === "member.joined" && frame.member.member_id === `matrix:${bob.userId}`) break;
    }
    return { channel, inbox };
  }

  test("a send from the API that mentions Bob and an agent: Bob's client gets m.mentions and a pill, and its push rules highlight it", async () => {
    const { channel, inbox } = await channelWithBob();
    const seen = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getType() === "m.room.message" && e.getContent().body?.startsWith("ping"));
    const text = `ping ${bob.userId} and @agent:sofia`;
    const res = await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text } });
    expect(res.status).toBe(201);
    const message = await res.json();
    expect(message.mentions).toEqual([`matrix:${bob.userId}`, "agent:sofia"]);

    const event = await seen;
    expect(event.getId()).toBe(message.matrix_event_id);
    // A pill's text is the member's display name (Bob's, from his join), else the member id.
    const members = await (await api(`/${channel.id}/members`, { as: "user:admin" })).json();
    const bobName = members.find((m: { member_id: string }) => m.member_id === `matrix:${bob.userId}`).display_name;
    expect(bobName).toBeTruthy();
    expect(event.getContent()).toMatchObject({
      body: text,
      "m.mentions": { user_ids: [bob.userId, mx("agent:sofia")] },
      format: "org.matrix.custom.html",
      formatted_body: `ping <a href="https://matrix.to/#/${bob.userId}">${bobName}</a> and <a href="https://matrix.to/#/${mx("agent:sofia")}">@agent:sofia</a>`,
    });
    // Synapse's own push rules for Bob (.m.rule.is_user_mention) make it a highlight, as Element shows it.
    const actions = client.getPushActionsForEvent(event, true);
    expect(actions?.notify).toBe(true);
    expect(actions?.tweaks?.highlight).toBe(true);

    expect(await inbox.nextOfType("message.created", 20000)).toMatchObject({ message: { id: message.id, mentions: [`matrix:${bob.userId}`, "agent:sofia"] } });
    inbox.close();
    expect(await nextPublished("messaging.agent.mentioned", (p) => p.message_id === message.id)).toMatchObject({
      event_id: `agent.mentioned:${message.id}:agent:sofia`,
      agent_id: "agent:sofia",
      matrix_event_id: message.matrix_event_id,
      sender_id: "user:alice",
      preview: text,
    });
    // Bob is a member too (a Matrix user): the mention is his in the index.
    const [row] = await server.app.deps.sql`select member_id from message_mentions where message_id = ${message.id} and member_id = ${`matrix:${bob.userId}`}`;
    expect(row).toBeDefined();
  });

  test("Bob mentions an agent and a user from his client (m.mentions): indexed, announced, an agent.mentioned, in the user's GET /mentions", async () => {
    const { channel, inbox } = await channelWithBob();
    const sent = await client.sendMessage(channel.matrix_room_id, {
      msgtype: "m.text",
      body: "Sofia, Alice: the report?",
      format: "org.matrix.custom.html",
      formatted_body: `<a href="https://matrix.to/#/${mx("agent:sofia")}">Sofia</a>, <a href="https://matrix.to/#/${mx("user:alice")}">Alice</a>: the report?`,
      "m.mentions": { user_ids: [mx("agent:sofia"), mx("user:alice"), mx("user:stranger")] },
    } as never);
    const frame = await inbox.nextOfType("message.created", 20000);
    inbox.close();
    expect(frame.message).toMatchObject({ matrix_event_id: sent.event_id, sender_id: `matrix:${bob.userId}`, mentions: ["agent:sofia", "user:alice"] });
    expect(await nextPublished("messaging.agent.mentioned", (p) => p.matrix_event_id === sent.event_id)).toMatchObject({
      event_id: `agent.mentioned:${frame.message.id}:agent:sofia`,
      agent_id: "agent:sofia",
      channel_id: channel.id,
      sender_id: `matrix:${bob.userId}`,
      preview: "Sofia, Alice: the report?",
      mentions: ["agent:sofia", "user:alice"],
    });
    expect(published.filter((e) => e.subject === "messaging.agent.mentioned" && (e.payload as any).message_id === frame.message.id)).toHaveLength(1);

    const mentions = await (await server.api(`/api/messaging/mentions?channel_id=${channel.id}`, { as: "user:alice" })).json();
    expect(mentions.map((m: { id: string }) => m.id)).toEqual([frame.message.id]);
    expect(mentions[0]).toMatchObject({ sender_id: `matrix:${bob.userId}`, mentions: ["agent:sofia", "user:alice"] });
    expect(await (await server.api(`/api/messaging/mentions?channel_id=${channel.id}`, { as: "user:admin" })).json()).toEqual([]);

    // Bob deletes it in his client: the mention is gone from Alice's list.
    await client.redactEvent(channel.matrix_room_id, sent.event_id);
    const watch = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await nextPublished("messaging.message.deleted", (p) => p.message_id === frame.message.id);
    watch.close();
    expect(await (await server.api(`/api/messaging/mentions?channel_id=${channel.id}`, { as: "user:alice" })).json()).toEqual([]);
  });

  test("edits both ways: an API edit's event mentions only the newly mentioned; Bob's edit with m.mentions replaces the message's", async () => {
    const { channel, inbox } = await channelWithBob();
    const message = await (await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "hello @agent:sofia" } })).json();
    expect(message.mentions).toEqual(["agent:sofia"]);
    expect((await inbox.nextOfType("message.created", 20000)).message.id).toBe(message.id);
    const seenEdit = nextRoomEvent(client, channel.matrix_room_id, (e) => e.getContent()["m.relates_to"]?.rel_type === "m.replace");
    const res = await api(`/${channel.id}/messages/${message.id}`, { method: "PATCH", as: "user:alice", json: { text: `hello @agent:sofia and ${bob.userId}` } });
    expect(res.status).toBe(200);
    const edit = await seenEdit;
    expect(edit.getContent()["m.mentions"]).toEqual({ user_ids: [bob.userId] });
    expect(edit.getContent()["m.new_content"]["m.mentions"]).toEqual({ user_ids: [mx("agent:sofia"), bob.userId] });
    expect((await inbox.nextOfType("message.updated", 20000)).message).toMatchObject({ id: message.id, mentions: ["agent:sofia", `matrix:${bob.userId}`] });

    const sent = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "draft", "m.mentions": {} } as never);
    expect((await inbox.nextOfType("message.created", 20000)).message).toMatchObject({ matrix_event_id: sent.event_id, mentions: [] });
    await client.sendMessage(channel.matrix_room_id, {
      msgtype: "m.text",
      body: "* Sofia, please",
      "m.mentions": { user_ids: [mx("agent:sofia")] },
      "m.new_content": { msgtype: "m.text", body: "Sofia, please", "m.mentions": { user_ids: [mx("agent:sofia")] } },
      "m.relates_to": { rel_type: "m.replace", event_id: sent.event_id },
    } as never);
    const updated = await inbox.nextOfType("message.updated", 20000);
    inbox.close();
    expect(updated.message).toMatchObject({ matrix_event_id: sent.event_id, content_preview: "Sofia, please", mentions: ["agent:sofia"] });
    expect(await nextPublished("messaging.agent.mentioned", (p) => p.message_id === updated.message.id)).toMatchObject({
      event_id: `agent.mentioned:${updated.message.id}:agent:sofia:v2`,
      sender_id: `matrix:${bob.userId}`,
      preview: "Sofia, please",
    });
  });
});
