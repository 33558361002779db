import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { freshPostgresDatabase, natsUrl, serviceMissing } from "../helpers/services.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { freePort, LineWatcher } from "../helpers/process.ts";
import { READ_REVOKED_CLOSE_CODE } from "../../src/realtime/sockets.ts";
import { PublishedLog } from "../helpers/published.ts";

/**
 * Two instances in cluster mode (in this process) on one PostgreSQL database and the machine's
 * NATS: every channel command reaches the owner from the other instance, WebSocket frames and
 * revocations reach sockets on either, since_seq works on either, an Idempotency-Key retry on
 * the other instance finds the first attempt. And `bun run cluster` starts a working cluster.
 */
setDefaultTimeout(60_000);
const skip = serviceMissing("DATABASE_URL") || serviceMissing("NATS_URL");

describe.skipIf(skip)("cluster: any instance serves any channel", () => {
  let db: { url: string; drop: () => Promise<void> };
  let a: TestServer;
  let b: TestServer;
  const clusterName = `api${crypto.randomUUID().slice(0, 8)}`;
  const env = (id: string) => ({
    CLUSTER: "on",
    CLUSTER_NAME: clusterName,
    INSTANCE_ID: id,
    CLUSTER_LEASE_TTL_MS: "3000",
    DATABASE_URL: db.url,
    SEND_CONFIRM_TIMEOUT_MS: "3000",
    // The link preview test's page server.
    LINK_PREVIEW_ALLOWED_ADDRESSES: "127.0.0.1",
  });
  const published = { a: new PublishedLog(), b: new PublishedLog() };

  beforeAll(async () => {
    db = await freshPostgresDatabase("daarion_cluster_api");
    a = await startTestServer(env("api-a"));
    b = await startTestServer(env("api-b"));
    published.a.record(a.app.deps.events);
    published.b.record(b.app.deps.events);
    const view = async (s: TestServer) => (await (await s.api("/internal/cluster")).json()) as { members: number; shards: number[] };
    const deadline = Date.now() + 20_000;
    for (;;) {
      const [va, vb] = await Promise.all([view(a), view(b)]);
      if (va.members === 2 && vb.members === 2 && va.shards.length > 0 && vb.shards.length > 0 && va.shards.length + vb.shards.length === 64) break;
      if (Date.now() > deadline) throw new Error(`the two instances did not split the shards: ${va.shards.length} / ${vb.shards.length}`);
      await Bun.sleep(50);
    }
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    await db?.drop();
  });

  /** The instance that owns the channel and the other one, as both agree. */
  async function placement(channelId: string): Promise<{ owner: TestServer; other: TestServer }> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const [va, vb] = await Promise.all([a, b].map(async (s) => (await (await s.api(`/internal/cluster?channel_id=${channelId}`)).json()) as { incarnation: string; channel: { owner: string } }));
      if (va!.channel.owner && va!.channel.owner === vb!.channel.owner) return va!.channel.owner === va!.incarnation ? { owner: a, other: b } : { owner: b, other: a };
      if (Date.now() > deadline) throw new Error("the instances do not agree on the owner");
      await Bun.sleep(50);
    }
  }

  test("/ready checks the cluster link; /internal/cluster names the owner of a channel", async () => {
    const ready = await (await a.api("/ready")).json();
    expect(ready.checks.cluster).toMatchObject({ ok: true });
    const channel = await createChannel(a, "user:alice");
    const { owner } = await placement(channel.id);
    const body = await (await owner.api(`/internal/cluster?channel_id=${channel.id}`)).json();
    expect(body.channel.owner).toBe(body.incarnation);
    expect(body.shards).toContain(body.channel.shard);
  });

  test("every channel command sent to the other instance reaches the owner", async () => {
    const channel = await createChannel(a, "user:alice");
    const { owner, other } = await placement(channel.id);
    const path = `/api/messaging/channels/${channel.id}`;
    const sent = await other.api(`${path}/messages`, { method: "POST", as: "user:alice", json: { text: "forwarded" } });
    expect(sent.status).toBe(201);
    const message = await sent.json();
    expect(message).toMatchObject({ seq: 1, status: "sent" });
    expect((await other.api(`${path}/messages/${message.id}/reactions`, { method: "POST", as: "user:alice", json: { emoji: "👍" } })).status).toBeLessThan(300);
    expect((await other.api(`${path}/messages/${message.id}`, { method: "PATCH", as: "user:alice", json: { text: "forwarded, edited" } })).status).toBe(200);
    expect((await other.api(`${path}/pins`, { method: "POST", as: "user:alice", json: { message_id: message.id } })).status).toBe(201);
    expect((await other.api(`${path}/members`, { method: "POST", as: "user:alice", json: { member_id: "user:bob", role: "member" } })).status).toBe(201);
    expect((await other.api(path, { method: "PATCH", as: "user:alice", json: { name: "Renamed across instances" } })).status).toBe(200);
    expect((await other.api(`${path}/read`, { method: "POST", as: "user:alice", json: { message_id: message.id } })).status).toBe(200);

    // What the owner's index says now.
    const read = await (await owner.api(`${path}/messages/${message.id}`, { as: "user:alice" })).json();
    expect(read.text ?? read.content_preview ?? read.preview).toContain("edited");
    expect(read.reactions).toEqual([{ emoji: "👍", count: 1, me: true }]);
    expect((await (await owner.api(`${path}/pins`, { as: "user:alice" })).json()).map((p: { message_id?: string; id?: string }) => p.message_id ?? p.id)).toContain(message.id);
    expect((await (await owner.api(`${path}/members`, { as: "user:alice" })).json()).map((m: { member_id: string }) => m.member_id)).toContain("user:bob");
    expect((await (await owner.api(path, { as: "user:alice" })).json()).name).toBe("Renamed across instances");
    expect((await other.api(`${path}/messages/${message.id}`, { method: "DELETE", as: "user:alice" })).status).toBeLessThan(300);
  });

  test("a subscriber on either instance gets every frame once, in order; since_seq works on the other instance", async () => {
    const channel = await createChannel(a, "user:alice");
    const { owner, other } = await placement(channel.id);
    const ws = (s: TestServer, query = "") => WsInbox.open(`${s.wsUrl}/ws/messaging/${channel.id}${query}`, { "x-user-id": "user:alice" });
    const [near, far] = await Promise.all([ws(owner), ws(other)]);
    for (let i = 1; i <= 3; i++) {
      const via = i % 2 ? other : owner;
      expect((await via.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: `m${i}` } })).status).toBe(201);
    }
    for (const inbox of [near, far]) {
      const seqs: number[] = [];
      for (let i = 0; i < 3; i++) seqs.push((await inbox.nextOfType("message.created")).seq);
      expect(seqs).toEqual([1, 2, 3]);
    }
    const resumed = await ws(other, "?since_seq=1");
    expect((await resumed.nextOfType("message.created")).seq).toBe(2);
    expect((await resumed.nextOfType("message.created")).seq).toBe(3);
    expect(await resumed.nextOfType("resumed")).toMatchObject({ since_seq: 1, replayed: 2, seq: 3 });
    // ...and goes on live, once.
    expect((await owner.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "m4" } })).status).toBe(201);
    expect((await resumed.nextOfType("message.created")).seq).toBe(4);
    expect(resumed.pending.filter((f) => f.includes('"message.created"'))).toEqual([]);
    for (const inbox of [near, far, resumed]) inbox.close();
  });

  test("sockets that join the other instance while messages are sent get each message once, as message.created, never as message.updated", async () => {
    const channel = await createChannel(a, "user:alice");
    const { owner, other } = await placement(channel.id);
    const ws = (query = "") => WsInbox.open(`${other.wsUrl}/ws/messaging/${channel.id}${query}`, { "x-user-id": "user:alice" });
    // Keeps the other instance's relay following the channel for the whole test.
    const keeper = await ws();
    const total = 40;
    const sending = (async () => {
      for (let i = 1; i <= total; i++) {
        const res = await owner.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: `j${i}` } });
        expect(res.status).toBe(201);
      }
    })();
    // Joins from the start of the channel while the sends run: each replay reads the index as it grows.
    const joiners: WsInbox[] = [];
    const keeperSeqs: number[] = [];
    for (let k = 0; k < 8; k++) {
      keeperSeqs.push((await keeper.nextOfType("message.created", 15_000)).seq);
      joiners.push(await ws("?since_seq=0"));
    }
    await sending;
    for (const inbox of [keeper, ...joiners]) {
      const seqs: number[] = inbox === keeper ? keeperSeqs : [];
      const types = new Set<string>();
      while (!seqs.includes(total)) {
        const frame = await inbox.nextJson(15_000);
        types.add(frame.type);
        if (frame.type === "message.created") seqs.push(frame.seq);
      }
      // The keeper from the first message on, each joiner from its replay: all of them, once, in order.
      expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect([...types].filter((t) => t === "message.updated")).toEqual([]);
    }
    for (const inbox of [keeper, ...joiners]) expect(inbox.pending.filter((f) => f.includes('"message.updated"') || f.includes('"message.created"'))).toEqual([]);
    for (const inbox of [keeper, ...joiners]) inbox.close();
  });

  test("a kick made on the owner closes the member's socket on the other instance; a narrowed visibility too", async () => {
    const channel = await createChannel(a, "user:alice");
    const { owner, other } = await placement(channel.id);
    const path = `/api/messaging/channels/${channel.id}`;
    for (const member of ["user:bob", "user:carol"]) {
      expect((await owner.api(`${path}/members`, { method: "POST", as: "user:alice", json: { member_id: member, role: "member" } })).status).toBe(201);
    }
    const bob = await WsInbox.open(`${other.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:bob" });
    const dave = await WsInbox.open(`${other.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:dave" });
    expect((await owner.api(`${path}/members/user:bob`, { method: "DELETE", as: "user:alice" })).status).toBeLessThan(300);
    expect((await bob.closed).code).toBe(READ_REVOKED_CLOSE_CODE);
    // Dave, not a member, read the public channel; made private, his socket ends there too.
    expect((await owner.api(path, { method: "PATCH", as: "user:alice", json: { visibility: "private" } })).status).toBe(200);
    expect((await dave.closed).code).toBe(READ_REVOKED_CLOSE_CODE);
  });

  test("an Idempotency-Key retry on the other instance answers the first attempt", async () => {
    const channel = await createChannel(a, "user:alice");
    const key = crypto.randomUUID();
    const post = (s: TestServer) =>
      s.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", headers: { "idempotency-key": key }, json: { text: "once" } });
    const first = await (await post(a)).json();
    const again = await post(b);
    expect(again.status).toBe(201);
    expect((await again.json()).id).toBe(first.id);
    const list = await (await a.api(`/api/messaging/channels/${channel.id}/messages`, { as: "user:alice" })).json();
    expect((list.messages ?? list).filter((m: { id: string }) => m.id === first.id)).toHaveLength(1);
  });

  test("link previews: sends to either instance get their preview, each link fetched once, written and published once, by the channel's owner", async () => {
    const hits = new Map<string, number>();
    const pages = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const { pathname } = new URL(req.url);
        hits.set(pathname, (hits.get(pathname) ?? 0) + 1);
        return new Response(`<html><head><meta property="og:title" content="Title of ${pathname}"></head></html>`, { headers: { "content-type": "text/html" } });
      },
    });
    try {
      const channel = await createChannel(a, "user:alice");
      const { owner, other } = await placement(channel.id);
      const inbox = await WsInbox.open(`${other.wsUrl}/ws/messaging/${channel.id}?user_id=user:alice`);
      const sent: Array<{ id: string }> = [];
      for (let i = 0; i < 6; i++) {
        const server = i % 2 === 0 ? other : owner;
        const res = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: `page http://127.0.0.1:${pages.port}/p${i}` } });
        expect(res.status).toBe(201);
        sent.push(await res.json());
      }
      const previews = new Map<string, string>();
      while (previews.size < sent.length) {
        const frame = await inbox.nextOfType("message.updated", 20_000);
        if (frame.message.link_preview) previews.set(frame.message.id, frame.message.link_preview.title);
      }
      inbox.close();
      expect(sent.map((m) => previews.get(m.id))).toEqual(sent.map((_, i) => `Title of /p${i}`));
      expect(sent.map((_, i) => hits.get(`/p${i}`))).toEqual(sent.map(() => 1));
      // Published by the owner only, once per message.
      const events = (log: PublishedLog, id: string) => log.events.filter((e) => e.subject === "messaging.message.updated" && (e.payload as any).message_id === id && (e.payload as any).change === "link_preview").length;
      const ownerLog = owner === a ? published.a : published.b;
      const otherLog = owner === a ? published.b : published.a;
      expect(sent.map((m) => [events(ownerLog, m.id), events(otherLog, m.id)])).toEqual(sent.map(() => [1, 0]));
      const [jobs] = await a.app.deps.sql<{ left: number }[]>`select count(*)::int as left from link_preview_jobs where channel_id = ${channel.id}`;
      expect(jobs!.left).toBe(0);
    } finally {
      pages.stop(true);
    }
  });
});

describe.skipIf(skip)("bun run cluster", () => {
  test("starts three instances behind a balancer that serves HTTP and WebSocket; SIGTERM stops them all", async () => {
    const db = await freshPostgresDatabase("daarion_cluster_dev");
    const port = await freePort();
    const proc = Bun.spawn(["bun", "run", "cluster", "--instances", "3", "--port", String(port)], {
      cwd: `${import.meta.dir}/../..`,
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp", DATABASE_URL: db.url, NATS_URL: natsUrl!, CLUSTER_NAME: `dev${crypto.randomUUID().slice(0, 8)}`, LOG_LEVEL: "warn" },
      stdout: "pipe",
      stderr: "inherit",
    });
    const out = new LineWatcher(proc.stdout);
    try {
      await out.waitFor((l) => l.includes("balancer on"), 1, 30_000);
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const views = await Promise.all([1, 2, 3].map((i) => fetch(`http://127.0.0.1:${port + i}/internal/cluster`).then((r) => r.json() as Promise<{ members: number }>).catch(() => null)));
        if (views.every((v) => v?.members === 3)) break;
        if (Date.now() > deadline) throw new Error(`the three instances did not see each other: ${JSON.stringify(views)}`);
        await Bun.sleep(100);
      }
      const created = await fetch(`${base}/api/messaging/channels`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-user-id": "user:dev" },
        body: JSON.stringify({ slug: "watch-it-move", name: "Watch it move", microdao_id: "microdao:dev", visibility: "public" }),
      });
      expect(created.status).toBe(201);
      const channel = (await created.json()) as { id: string };
      const ws = await WsInbox.open(`ws://127.0.0.1:${port}/ws/messaging/${channel.id}`, { "x-user-id": "user:dev" });
      // Open at the balancer; a pong says the instance behind it has the socket too.
      ws.ws.send("ping");
      expect(await ws.next(10_000)).toBe("pong");
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${base}/api/messaging/channels/${channel.id}/messages`, { method: "POST", headers: { "content-type": "application/json", "x-user-id": "user:dev" }, body: JSON.stringify({ text: `hello ${i}` }) });
        expect(res.status).toBe(201);
      }
      expect([(await ws.nextOfType("message.created")).seq, (await ws.nextOfType("message.created")).seq, (await ws.nextOfType("message.created")).seq]).toEqual([1, 2, 3]);
      ws.close();
    } finally {
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      await db.drop();
    }
  });
});

describe.skipIf(skip)("cluster in push mode", () => {
  const HS_TOKEN = "hs-token-for-cluster-tests-0123456789";
  let db: { url: string; drop: () => Promise<void> };
  const servers: TestServer[] = [];

  beforeAll(async () => {
    db = await freshPostgresDatabase("daarion_cluster_push");
    const name = `push${crypto.randomUUID().slice(0, 8)}`;
    for (const id of ["push-a", "push-b"]) {
      servers.push(await startTestServer({ CLUSTER: "on", CLUSTER_NAME: name, INSTANCE_ID: id, CLUSTER_LEASE_TTL_MS: "3000", DATABASE_URL: db.url, MATRIX_EVENTS_MODE: "push", MATRIX_HS_TOKEN: HS_TOKEN }));
    }
  });
  afterAll(async () => {
    for (const server of servers.reverse()) await server.stop();
    await db?.drop();
  });

  test("a transaction pushed to either instance is indexed once, by the channel's owner, and reaches subscribers on both", async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const channel = await createChannel(a, "user:alice");
    const inboxes = await Promise.all([a, b].map((s) => WsInbox.open(`${s.wsUrl}/ws/messaging/${channel.id}`, { "x-user-id": "user:alice" })));
    const event = (body: string) => ({
      event_id: `$${crypto.randomUUID()}`,
      room_id: channel.matrix_room_id,
      sender: "@carol:elsewhere.example",
      type: "m.room.message",
      content: { msgtype: "m.text", body },
      origin_server_ts: Date.now(),
    });
    const first = event("pushed to a");
    const second = event("pushed to b");
    const push = (s: TestServer, txnId: string, events: unknown[]) =>
      fetch(`${s.url}/_matrix/app/v1/transactions/${txnId}`, { method: "PUT", headers: { "content-type": "application/json", authorization: `Bearer ${HS_TOKEN}` }, body: JSON.stringify({ events }) });
    expect((await push(a, "txn-1", [first])).status).toBe(200);
    expect((await push(b, "txn-2", [second])).status).toBe(200);
    // The homeserver retries a transaction it got no answer for: on the other instance, say.
    expect((await push(b, "txn-1", [first])).status).toBe(200);
    for (const inbox of inboxes) {
      const bodies = [(await inbox.nextOfType("message.created", 15_000)).message, (await inbox.nextOfType("message.created", 15_000)).message].map((m) => m.text ?? m.preview ?? m.content_preview);
      expect(bodies.sort()).toEqual(["pushed to a", "pushed to b"]);
    }
    const rows = await a.app.deps.sql`select matrix_event_id from messages where channel_id = ${channel.id}`;
    expect(rows.map((r) => r.matrix_event_id).sort()).toEqual([first.event_id, second.event_id].sort());
    for (const inbox of inboxes) inbox.close();
  });
});
