import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import postgres from "postgres";
import { connect, DeliverPolicy, AckPolicy } from "nats";
import { freshPostgresDatabase, serviceMissing } from "../helpers/services.ts";
import { ClusterUnderTest, createChannel, Load, PrivateNats, Subscriber, until, type Instance } from "./cluster-harness.ts";

/**
 * The cluster fault suite: three instances on PostgreSQL and a NATS of the suite's own, four
 * busy channels, senders round-robin over the instances with Idempotency-Key, and a WebSocket
 * subscriber per channel on every instance that resumes by seq wherever it can. Faults in turn:
 * kill -9 of a busy channel's owner (restarted later), SIGSTOP of an owner past the lease TTL
 * (then SIGCONT), a rolling SIGTERM restart of all three, and a NATS restart. Nothing accepted
 * may be missing or doubled in the index, in Matrix (the local backend's room timeline) or in
 * JetStream, and every subscriber must see every message once, in seq order.
 */
setDefaultTimeout(300_000);
const skip = serviceMissing("DATABASE_URL") || serviceMissing("NATS_URL");
const LEASE_TTL_MS = 2000;
const CHANNELS = 4;

describe.skipIf(skip)("cluster: faults under load", () => {
  let db: { url: string; drop: () => Promise<void> };
  let nats: PrivateNats;
  let cluster: ClusterUnderTest;
  let sql: postgres.Sql;
  let channels: string[] = [];
  let load: Load;
  const subscribers: Subscriber[] = [];
  const figures: Record<string, Record<string, number | string>> = {};

  beforeAll(async () => {
    db = await freshPostgresDatabase("daarion_cluster");
    nats = await PrivateNats.start();
    sql = postgres(db.url, { max: 2, onnotice: () => {} });
    cluster = new ClusterUnderTest({
      CLUSTER: "on",
      CLUSTER_NAME: `t${crypto.randomUUID().slice(0, 8)}`,
      CLUSTER_LEASE_TTL_MS: String(LEASE_TTL_MS),
      CLUSTER_OWNER_WAIT_MS: "8000",
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      LOG_LEVEL: "info",
      SEND_CONFIRM_TIMEOUT_MS: "2000",
      RATE_LIMIT_USER_PER_MIN: "0",
      RATE_LIMIT_CHANNEL_PER_MIN: "0",
      RATE_LIMIT_READ_PER_MIN: "0",
      RATE_LIMIT_ADDRESS_PER_MIN: "0",
    });
    // One first, so the migrations run once; then the other two.
    await cluster.start("node-1");
    await Promise.all([cluster.start("node-2"), cluster.start("node-3")]);
    await until(async () => (await clusterView(cluster.instances[0]!)).members === 3, 10_000, "three members");
    for (let i = 0; i < CHANNELS; i++) channels.push(await createChannel(cluster.instances[i % 3]!.url, `busy-${i}`));
    for (const channelId of channels) {
      for (const instance of cluster.instances) {
        const subscriber = new Subscriber(cluster, channelId, instance.name);
        await subscriber.connect();
        subscribers.push(subscriber);
      }
    }
    load = new Load(cluster, channels, 2);
    await acceptedCount(20);
  });

  afterAll(async () => {
    for (const subscriber of subscribers) subscriber.close();
    await load?.stop();
    await cluster?.stop();
    await sql?.end();
    if (process.env.CLUSTER_TEST_KEEP === "1") return;
    await nats?.stop();
    await db?.drop();
  });

  async function clusterView(instance: Instance) {
    return (await (await fetch(`${instance.url}/internal/cluster`)).json()) as { members: number; shards: number[] };
  }

  /** Waits until `more` messages were accepted from now on. */
  async function acceptedCount(more: number, timeoutMs = 60_000) {
    const target = load.sent.filter((m) => m.accepted).length + more;
    await until(() => load.sent.filter((m) => m.accepted).length >= target, timeoutMs, `${more} more accepted sends`);
  }

  function logLines(pattern: RegExp): number {
    return cluster.instances.reduce((n, i) => n + i.main.out.lines.filter((l) => pattern.test(l)).length, 0);
  }

  test("kill -9 of a busy channel's owner: its channels move; it comes back later", async () => {
    load.phase = "kill";
    const victim = (await cluster.ownerOf(channels[0]!))!;
    expect(victim).not.toBeNull();
    const killedAt = Date.now();
    cluster.kill(victim, "SIGKILL");
    const failover = await load.acceptedAfter(channels[0]!, killedAt, 30_000);
    figures.kill = { failover_ms: failover, killed: victim.name };
    expect(failover).toBeLessThan(LEASE_TTL_MS + 6000);
    await acceptedCount(30);
    await cluster.start(victim.name);
    await acceptedCount(20);
  });

  test("SIGSTOP of an owner past the lease TTL, then SIGCONT: the others take over, and it gives its shards up when it wakes", async () => {
    load.phase = "pause";
    const victim = (await cluster.ownerOf(channels[1]!))!;
    const refusedBefore = logLines(/fenced write refused/);
    const pausedAt = Date.now();
    cluster.kill(victim, "SIGSTOP");
    let failover: number;
    try {
      failover = await load.acceptedAfter(channels[1]!, pausedAt, 30_000);
      await acceptedCount(20);
    } finally {
      victim.main.proc.kill("SIGCONT");
      victim.alive = true;
    }
    // Awake, it finds its leases gone: it stops its actors, and no write of its lands.
    await until(async () => (await clusterView(victim).catch(() => ({ members: 0, shards: [0] }))).shards.length < 64, 15_000, "the resumed instance to give its shards up");
    await acceptedCount(30);
    figures.pause = { failover_ms: failover, paused: victim.name, fenced_writes_refused: logLines(/fenced write refused/) - refusedBefore };
    expect(failover).toBeLessThan(LEASE_TTL_MS + 6000);
  });

  test("a rolling SIGTERM restart of all three", async () => {
    load.phase = "rolling";
    const statusesBefore = load.sent.flatMap((m) => m.statuses).length;
    for (const name of ["node-1", "node-2", "node-3"]) {
      const instance = cluster.instances.find((i) => i.name === name)!;
      cluster.kill(instance, "SIGTERM");
      expect(await cluster.exited(instance)).toBe(0);
      await cluster.start(name);
      await acceptedCount(15);
    }
    const statuses = load.sent.flatMap((m) => m.statuses).slice(statusesBefore);
    const unexpected = statuses.filter((s) => s >= 500 && s !== 503);
    figures.rolling = { requests: statuses.length, retryable_503: statuses.filter((s) => s === 503).length, connection_refused: statuses.filter((s) => s === 0).length, other_5xx: unexpected.length };
    expect(unexpected).toEqual([]);
  });

  test("NATS restarted", async () => {
    load.phase = "nats";
    await nats.down();
    const downAt = Date.now();
    await Bun.sleep(500); // the outage itself, not a synchronisation
    await nats.up();
    const recovered = await load.acceptedAfter(channels[2]!, downAt + 500, 30_000);
    await acceptedCount(30);
    figures.nats = { recovered_ms: recovered };
  });

  test("nothing accepted is missing or doubled (index, Matrix, JetStream); every subscriber got every message once, in order", async () => {
    await load.stop();
    const accepted = load.sent.filter((m) => m.accepted);
    // Settled: every accepted message is sent (in Matrix) and every subscriber reached each channel's last seq.
    await until(async () => Number((await sql`select count(*) from messages where delivery_state = 'pending'`)[0]!.count) === 0, 60_000, "pending sends to be delivered");
    await until(async () => Number((await sql`select count(*) from event_outbox`)[0]!.count) === 0, 60_000, "the event outbox to be flushed to JetStream");
    const maxSeq = new Map<string, number>();
    for (const row of await sql<{ channel_id: string; max: string }[]>`select channel_id, max(seq) from messages group by channel_id`) maxSeq.set(row.channel_id, Number(row.max));
    await until(() => subscribers.every((s) => s.last >= (maxSeq.get(s.channelId) ?? 0)), 60_000, "subscribers to catch up");

    const indexed = new Map<string, number>();
    for (const row of await sql<{ content_preview: string; n: string }[]>`select content_preview, count(*) as n from messages where sender_id = 'user:loadgen' group by content_preview`) {
      indexed.set(row.content_preview, Number(row.n));
    }
    const inMatrix = new Map<string, number>();
    for (const row of await sql<{ body: string; n: string }[]>`select content->>'body' as body, count(*) as n from local_matrix_events where type = 'm.room.message' group by 1`) {
      inMatrix.set(row.body, Number(row.n));
    }
    const messageIds = new Map<string, string>();
    for (const row of await sql<{ id: string; content_preview: string }[]>`select id, content_preview from messages where sender_id = 'user:loadgen'`) messageIds.set(row.content_preview, row.id);
    const inJetStream = await jetStreamCounts(nats.url);

    const report: string[] = [];
    let problems = 0;
    for (const phase of ["warm-up", "kill", "pause", "rolling", "nats"]) {
      const mine = accepted.filter((m) => m.phase === phase);
      const count = (map: Map<string, number>, key: (m: (typeof mine)[0]) => string | undefined) => {
        let missing = 0;
        let doubled = 0;
        for (const m of mine) {
          const n = map.get(key(m) ?? "") ?? 0;
          if (n === 0) missing++;
          if (n > 1) doubled++;
        }
        return { missing, doubled };
      };
      const idx = count(indexed, (m) => m.text);
      const mx = count(inMatrix, (m) => m.text);
      const js = count(inJetStream, (m) => messageIds.get(m.text));
      for (const m of mine) {
        if (inJetStream.has(messageIds.get(m.text) ?? "")) continue;
        const [row] = await sql`select seq, delivery_state, created_at, matrix_event_id from messages where id = ${messageIds.get(m.text) ?? null}`;
        console.log(`not in JetStream: ${m.text} ${messageIds.get(m.text)} ${JSON.stringify(row)} statuses ${m.statuses} db ${db.url} nats ${nats.dir}`);
      }
      problems += idx.missing + idx.doubled + mx.missing + mx.doubled + js.missing + js.doubled;
      report.push(
        `${phase.padEnd(8)} accepted ${String(mine.length).padStart(4)} | indexed missing ${idx.missing} doubled ${idx.doubled} | in Matrix missing ${mx.missing} doubled ${mx.doubled} | in JetStream missing ${js.missing} doubled ${js.doubled} | ${JSON.stringify(figures[phase] ?? {})}`,
      );
    }
    const notAccepted = load.sent.filter((m) => !m.accepted);
    // A message never accepted may exist (its answer was lost) but never twice.
    for (const m of notAccepted) problems += (indexed.get(m.text) ?? 0) > 1 ? 1 : 0;
    for (const s of subscribers) {
      const expected = maxSeq.get(s.channelId) ?? 0;
      const seen = new Set(s.created);
      let missing = 0;
      for (let seq = 1; seq <= expected; seq++) if (!seen.has(seq)) missing++;
      const duplicated = s.created.length - seen.size;
      problems += missing + duplicated + s.outOfOrder;
      report.push(
        `subscriber ${s.channelId.slice(-6)} received ${s.created.length} missing ${missing} duplicated ${duplicated} out of order ${s.outOfOrder} reconnects ${s.reconnects} longest gap ${s.longestGapMs} ms`,
      );
    }
    console.log(`cluster fault suite (${accepted.length} accepted, ${notAccepted.length} given up):\n${report.join("\n")}`);
    expect(problems).toBe(0);
    expect(accepted.length).toBeGreaterThan(200);
  });
});

/** How many messaging.message.created events JetStream holds per message id. */
async function jetStreamCounts(url: string): Promise<Map<string, number>> {
  const nc = await connect({ servers: url });
  const counts = new Map<string, number>();
  try {
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info("MESSAGING");
    const total = info.state.messages;
    const name = `count-${crypto.randomUUID().slice(0, 8)}`;
    await jsm.consumers.add("MESSAGING", { durable_name: name, deliver_policy: DeliverPolicy.All, ack_policy: AckPolicy.None, filter_subject: "messaging.message.created" });
    const consumer = await js.consumers.get("MESSAGING", name);
    // Batch after batch until one comes back empty: every stored message.created is counted.
    for (let got = -1; got !== 0; ) {
      got = 0;
      for await (const m of await consumer.fetch({ max_messages: 500, expires: 1000 })) {
        got++;
        const id = (m.json() as { message_id: string }).message_id;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    expect(total).toBeGreaterThan(0);
  } finally {
    await nc.close();
  }
  return counts;
}
