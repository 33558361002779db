import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("WebSocket resume with a Matrix client (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  /** Message frames until one matches; other frames (joins, typing) are passed over. */
  async function messageFrames(inbox: WsInbox, until: (frame: any) => boolean, timeoutMs = 20000) {
    const frames: any[] = [];
    for (;;) {
      const frame = await inbox.nextJson(timeoutMs);
      if (frame.type === "message.created" || frame.type === "resumed") frames.push(frame);
      if (until(frame)) return frames;
    }
  }

  test("messages a Matrix client sent while the socket was away arrive on resume, then live ones", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const url = `${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`;
    const watcher = await WsInbox.open(url);
    await client.joinRoom(channel.matrix_alias);
    expect(await watcher.nextJson(20000)).toMatchObject({ type: "member.joined", seq: 0 });
    const reader = await WsInbox.open(url);
    await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "hello" } });
    const [first] = await messageFrames(reader, (f) => f.type === "message.created");
    expect(first).toMatchObject({ seq: 1, message: { content_preview: "hello" } });
    reader.close();
    await reader.closed;

    for (const body of ["while", "you", "were away"]) await client.sendTextMessage(channel.matrix_room_id, body);
    // The watcher stays connected: it shows when the service has indexed all three.
    const seen = await messageFrames(watcher, (f) => f.type === "message.created" && f.message.content_preview === "were away");
    expect(seen.map((f) => f.seq)).toEqual([1, 2, 3, 4]);

    const back = await WsInbox.open(`${url}&since_seq=1`);
    const replay = await messageFrames(back, (f) => f.type === "resumed");
    expect(replay.map((f) => [f.type, f.seq, f.message?.content_preview, f.message?.sender_id])).toEqual([
      ["message.created", 2, "while", `matrix:${bob.userId}`],
      ["message.created", 3, "you", `matrix:${bob.userId}`],
      ["message.created", 4, "were away", `matrix:${bob.userId}`],
      ["resumed", 4, undefined, undefined],
    ]);
    await client.sendTextMessage(channel.matrix_room_id, "live now");
    const live = await messageFrames(back, (f) => f.type === "message.created");
    expect(live).toEqual([expect.objectContaining({ seq: 5, message: expect.objectContaining({ content_preview: "live now" }) })]);
    back.close();
    watcher.close();
  });
});
