import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection, type Subscription } from "nats";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { natsUrl, serviceMissing } from "../helpers/services.ts";

const skip = serviceMissing("NATS_URL");

describe.skipIf(skip)("NATS events", () => {
  let server: TestServer;
  let nc: NatsConnection;
  let sub: Subscription;
  const received: Array<{ subject: string; data: any }> = [];
  let wake: (() => void) | null = null;

  beforeAll(async () => {
    nc = await connect({ servers: natsUrl! });
    sub = nc.subscribe("messaging.>");
    void (async () => {
      for await (const m of sub) {
        received.push({ subject: m.subject, data: m.json() });
        wake?.();
      }
    })();
    await nc.flush();
    server = await startTestServer({ NATS_URL: natsUrl! });
    await (server.app.deps.events as unknown as { ready(): Promise<void> }).ready();
  }, 60000);
  afterAll(async () => {
    await server?.stop();
    await nc?.drain();
  }, 60000);

  async function waitFor(pred: (e: { subject: string; data: any }) => boolean, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = received.find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching NATS event; got ${JSON.stringify(received.map((r) => r.subject))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  test("channel.created, member.invited and message.created are published with the seed's fields", async () => {
    expect(server.app.deps.events.kind).toBe("nats");
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const invite = await server.api(`/api/messaging/channels/${channel.id}/members`, {
      method: "POST",
      as: "user:admin",
      json: { member_id: "agent:sofia", role: "agent" },
    });
    expect(invite.status).toBe(201);
    const post = await server.api(`/internal/agents/agent:sofia/post-to-channel`, {
      method: "POST",
      json: { channel_id: channel.id, text: "published" },
    });
    const posted = await post.json();

    const created = await waitFor((e) => e.subject === "messaging.channel.created" && e.data.channel_id === channel.id);
    expect(created.data).toMatchObject({
      channel_id: channel.id,
      microdao_id: "microdao:daarion",
      matrix_room_id: channel.matrix_room_id,
      created_by: "user:admin",
    });
    const invited = await waitFor((e) => e.subject === "messaging.member.invited" && e.data.channel_id === channel.id);
    expect(invited.data).toMatchObject({ channel_id: channel.id, member_id: "agent:sofia", invited_by: "user:admin", role: "agent" });
    const message = await waitFor((e) => e.subject === "messaging.message.created" && e.data.channel_id === channel.id);
    expect(message.data).toMatchObject({
      channel_id: channel.id,
      message_id: posted.message_id,
      matrix_event_id: posted.message.matrix_event_id,
      sender_id: "agent:sofia",
      sender_type: "agent",
      preview: "published",
      seq: 1,
      microdao_id: "microdao:daarion",
    });
    expect(new Date(message.data.created_at).toISOString()).toBe(message.data.created_at);
  });
});

describe("NATS down", () => {
  test("the service starts and keeps serving while NATS is unreachable", async () => {
    // A port nothing listens on: the broker is "down".
    const server = await startTestServer({ NATS_URL: "nats://127.0.0.1:1" });
    try {
      const channel = await createChannel(server, "user:admin");
      const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, {
        method: "POST",
        as: "user:admin",
        json: { text: "still works" },
      });
      expect(res.status).toBe(201);
    } finally {
      await server.stop();
    }
  });
});
