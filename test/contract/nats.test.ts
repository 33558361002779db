import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect, type NatsConnection, type Subscription } from "nats";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { natsUrl, serviceMissing } from "../helpers/services.ts";
import { freePort, LineWatcher } from "../helpers/process.ts";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const NATS_SERVER = "/usr/sbin/nats-server";
// These suites start servers (and a NATS of their own): give them room on a busy machine.
setDefaultTimeout(60_000);

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

describe.skipIf(skip)("JetStream", () => {
  test("events land in the MESSAGING stream with Nats-Msg-Id set to their event id", async () => {
    const server = await startTestServer({ NATS_URL: natsUrl! });
    const nc = await connect({ servers: natsUrl! });
    try {
      await (server.app.deps.events as unknown as { ready(): Promise<void> }).ready();
      const channel = await createChannel(server, "user:admin");
      await (server.app.deps.events as unknown as { flushed(): Promise<void> }).flushed();
      const jsm = await nc.jetstreamManager();
      const info = await jsm.streams.info("MESSAGING");
      expect(info.config.subjects).toEqual(["messaging.>"]);
      const stored = await jsm.streams.getMessage("MESSAGING", { last_by_subj: "messaging.channel.created" });
      expect(stored.json<{ channel_id: string }>().channel_id).toBe(channel.id);
      expect(stored.header.get("Nats-Msg-Id")).toBe(`channel.created:${channel.id}`);
    } finally {
      await nc.close();
      await server.stop();
    }
  });
});

describe.skipIf(!existsSync(NATS_SERVER))("NATS stopped and started again", () => {
  test("events published while NATS is down wait in the outbox and reach JetStream once when it returns", async () => {
    const port = await freePort();
    const storeDir = mkdtempSync(join(tmpdir(), "daarion-nats-"));
    // nats-server logs to stderr; "Server is ready" is the moment it accepts clients.
    const startNats = async () => {
      const proc = Bun.spawn([NATS_SERVER, "-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], { stdout: "ignore", stderr: "pipe" });
      await new LineWatcher(proc.stderr).waitFor((l) => l.includes("Server is ready"), 1, 15000);
      return proc;
    };
    const url = `nats://127.0.0.1:${port}`;
    let nats = await startNats();
    const server = await startTestServer({ NATS_URL: url });
    try {
      await (server.app.deps.events as unknown as { ready(): Promise<void> }).ready();
      const channel = await createChannel(server, "user:admin");
      await (server.app.deps.events as unknown as { flushed(): Promise<void> }).flushed();

      nats.kill("SIGKILL");
      await nats.exited;
      const sent: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: `while down ${i}` } });
        expect(res.status).toBe(201);
        sent.push((await res.json()).id);
      }
      const [waiting] = await server.app.deps.sql`select count(*)::int as n from event_outbox`;
      expect(waiting!.n).toBeGreaterThanOrEqual(5);

      nats = await startNats();
      // Every message.created event arrives, each exactly once.
      const nc = await connect({ servers: url });
      try {
        const js = nc.jetstream();
        // An ordered consumer over the whole stream (this NATS may predate multi-subject filters).
        const consumer = await js.consumers.get("MESSAGING");
        const seen: string[] = [];
        const deadline = Date.now() + 20000;
        while (seen.length < sent.length && Date.now() < deadline) {
          const batch = await consumer.fetch({ max_messages: 10, expires: 2000 });
          for await (const m of batch) {
            if (m.subject === "messaging.message.created") seen.push(m.json<{ message_id: string }>().message_id);
          }
        }
        expect(seen.sort()).toEqual([...sent].sort());
        const info = await (await nc.jetstreamManager()).streams.info("MESSAGING");
        // channel.created + 5 message.created, nothing doubled.
        expect(info.state.messages).toBe(6);
      } finally {
        await nc.close();
      }
      const [left] = await server.app.deps.sql`select count(*)::int as n from event_outbox`;
      expect(left!.n).toBe(0);
    } finally {
      await server.stop();
      nats.kill("SIGKILL");
      await nats.exited;
      rmSync(storeDir, { recursive: true, force: true });
    }
  }, 120000);
});
