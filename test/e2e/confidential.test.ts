import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { MatrixClient } from "matrix-js-sdk";
import { startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";
import { elementClient, registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(60_000);

describe.skipIf(synapseMissing())("confidential channels with a Matrix client (Synapse)", () => {
  let server: TestServer;
  let bob: { userId: string; accessToken: string };
  let client: MatrixClient;
  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);

  beforeAll(async () => {
    server = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
    bob = await registerRealUser("bob");
    client = await elementClient(bob);
  }, 120000);
  afterAll(async () => {
    client?.stopClient();
    await server?.stop();
  }, 60000);

  test("the client sees m.room.encryption; its encrypted messages are indexed without content; REST sends are refused", async () => {
    const res = await api("", {
      method: "POST",
      as: "user:admin",
      json: { slug: uniqueSlug("secret"), name: "Secret", microdao_id: "microdao:daarion", visibility: "public", is_encrypted: true },
    });
    expect(res.status).toBe(201);
    const channel = (await res.json()) as { id: string; matrix_room_id: string; matrix_alias: string };
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:admin`);
    await client.joinRoom(channel.matrix_alias);
    expect(await inbox.nextJson(20000)).toMatchObject({ type: "member.joined" });

    expect(await client.getStateEvent(channel.matrix_room_id, "m.room.encryption", "")).toEqual({ algorithm: "m.megolm.v1.aes-sha2" });

    // What an E2EE client (Element) sends: ciphertext the service has no keys for.
    const txn = crypto.randomUUID();
    const sent = await fetch(`${synapse!.url}/_matrix/client/v3/rooms/${encodeURIComponent(channel.matrix_room_id)}/send/m.room.encrypted/${txn}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${bob.accessToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        algorithm: "m.megolm.v1.aes-sha2",
        ciphertext: "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg",
        device_id: "RJYKSTBOIE",
        sender_key: "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
        session_id: "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
      }),
    });
    expect(sent.status).toBe(200);
    const { event_id } = (await sent.json()) as { event_id: string };
    expect(await inbox.nextJson(20000)).toMatchObject({
      type: "message.created",
      message: { matrix_event_id: event_id, matrix_type: "m.room.encrypted", content_type: "encrypted", content_preview: "", sender_id: `matrix:${bob.userId}` },
    });

    const refused = await api(`/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "plaintext would leak" } });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: string }).error).toBe("CHANNEL_ENCRYPTED");
    inbox.close();
  });
});
