import { describe, expect, test } from "bun:test";
import { createChannel, startTestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

describe("graceful shutdown", () => {
  test("open WebSockets are closed with 1001 (going away), after the answers in flight went out", async () => {
    const server = await startTestServer();
    const channel = await createChannel(server, "user:admin");
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    const sent = server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "last words" } });
    expect((await sent).status).toBe(201);
    expect((await inbox.nextJson()).message.content_preview).toBe("last words");
    await server.stop();
    expect(await inbox.closed).toMatchObject({ code: 1001 });
  }, 60000);
});
