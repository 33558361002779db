import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { requireServices } from "../helpers/services.ts";
import { elementClient, registerRealUser, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

/**
 * Push mode against the real Synapse: the registration's url (MATRIX_AS_URL, given to
 * `bun run synapse start`) points at the port this suite's server listens on.
 */
setDefaultTimeout(60_000);

const asUrl = process.env.MATRIX_AS_URL ? new URL(process.env.MATRIX_AS_URL) : null;
function pushUnavailable(): boolean {
  if (synapseMissing()) return true;
  if (asUrl) return false;
  if (requireServices) throw new Error("REQUIRE_SERVICES=1 but MATRIX_AS_URL is not set (start Synapse with it)");
  return true;
}

describe.skipIf(pushUnavailable())("push mode (Synapse pushes to the service)", () => {
  let server: TestServer;
  let client: MatrixClient;

  beforeAll(async () => {
    server = await startTestServer(
      synapseServiceEnv({ MATRIX_EVENTS_MODE: "push", PORT: asUrl!.port, HOST: asUrl!.hostname }),
    );
    client = await elementClient(await registerRealUser("pusher"));
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  test("a message from the Matrix client arrives by push, once, on the WebSocket and in the index", async () => {
    const health = await (await server.api("/health")).json();
    expect(health.live.sync_poller ?? 0).toBe(0);
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    const { event_id } = await client.sendMessage(channel.matrix_room_id, { msgtype: "m.text", body: "pushed from Element" } as never);
    let frame = await inbox.nextJson(30000);
    if (frame.type === "member.joined") frame = await inbox.nextJson(30000);
    expect(frame).toMatchObject({ type: "message.created", message: { matrix_event_id: event_id, content_preview: "pushed from Element" } });
    const [txns] = await server.app.deps.sql`select count(*)::int as n from matrix_push_transactions`;
    expect(txns!.n).toBeGreaterThan(0);
    inbox.ws.send("ping");
    expect(await inbox.next()).toBe("pong");
    inbox.close();
  });

  test("typing in the Matrix client arrives by push (the transaction's ephemeral events), and stops", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    await client.joinRoom(channel.matrix_alias);
    const typing = async () => {
      for (;;) {
        const frame = await inbox.nextJson(30000);
        if (frame.type === "typing") return frame;
      }
    };
    await client.sendTyping(channel.matrix_room_id, true, 30000);
    expect(await typing()).toEqual({ seq: 0, type: "typing", user_ids: [`matrix:${client.getUserId()}`] });
    await client.sendTyping(channel.matrix_room_id, false, 0);
    expect(await typing()).toEqual({ seq: 0, type: "typing", user_ids: [] });
    inbox.close();
  });
});
