import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "nats";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { natsUrl, serviceMissing } from "../helpers/services.ts";

/** The new subjects reach a real NATS broker (the other suites watch the in-process listeners). */
describe.skipIf(serviceMissing("NATS_URL"))("membership, pins and archive on NATS", () => {
  let server: TestServer;
  let nc: NatsConnection;
  const received: Array<{ subject: string; data: any }> = [];
  let wake: (() => void) | null = null;

  beforeAll(async () => {
    nc = await connect({ servers: natsUrl! });
    const sub = nc.subscribe("messaging.>");
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

  async function waitFor(subject: string, channelId: string, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = received.find((e) => e.subject === subject && e.data.channel_id === channelId);
      if (hit) return hit.data;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${subject}; got ${JSON.stringify(received.map((r) => r.subject))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  test("member.updated, member.kicked, member.left, message.pinned/unpinned, channel.updated, channel.archived", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const api = (path: string, method: string, as: string, json?: unknown) => server.api(`/api/messaging/channels/${channel.id}${path}`, { method, as, json });
    await api("/members", "POST", "user:admin", { member_id: "user:bob" });
    await api("/members", "POST", "user:admin", { member_id: "user:carol" });
    expect((await api("/members/user:bob", "PATCH", "user:admin", { can_kick: true })).status).toBe(200);
    expect((await api("/members/user:carol", "DELETE", "user:bob")).status).toBe(200);
    expect((await api("/members/user:bob", "DELETE", "user:bob")).status).toBe(200);
    const msg = await (await api("/messages", "POST", "user:admin", { text: "pin me" })).json();
    expect((await api("/pins", "POST", "user:admin", { message_id: msg.id })).status).toBe(201);
    expect((await api(`/pins/${msg.id}`, "DELETE", "user:admin")).status).toBe(204);
    expect((await api("", "PATCH", "user:admin", { topic: "new" })).status).toBe(200);
    expect((await api("", "DELETE", "user:admin")).status).toBe(200);

    expect(await waitFor("messaging.member.updated", channel.id)).toMatchObject({ member_id: "user:bob", can_kick: true, updated_by: "user:admin" });
    expect(await waitFor("messaging.member.kicked", channel.id)).toMatchObject({ member_id: "user:carol", kicked_by: "user:bob", via: "api" });
    expect(await waitFor("messaging.member.left", channel.id)).toMatchObject({ member_id: "user:bob", via: "api" });
    expect(await waitFor("messaging.message.pinned", channel.id)).toMatchObject({ message_id: msg.id, pinned_by: "user:admin" });
    expect(await waitFor("messaging.message.unpinned", channel.id)).toMatchObject({ message_id: msg.id, unpinned_by: "user:admin" });
    expect(await waitFor("messaging.channel.updated", channel.id)).toMatchObject({ fields: ["topic"], updated_by: "user:admin" });
    expect(await waitFor("messaging.channel.archived", channel.id)).toMatchObject({ archived_by: "user:admin", microdao_id: "microdao:daarion" });
  });
});
