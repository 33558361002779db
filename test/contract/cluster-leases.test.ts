import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect, type NatsConnection } from "nats";
import postgres from "postgres";
import { LeaseBucket } from "../../src/cluster/leases.ts";
import { ClusterOwnership, type OwnershipHooks } from "../../src/cluster/ownership.ts";
import { SHARD_COUNT, shardOf } from "../../src/cluster/shards.ts";
import { claimFence, isFenced } from "../../src/store/fences.ts";
import { migrate } from "../../src/store/migrate.ts";
import { createLogger } from "../../src/log.ts";
import type { Sql } from "../../src/store/db.ts";
import { databaseUrl, freshPostgresDatabase, natsUrl, serviceMissing } from "../helpers/services.ts";

setDefaultTimeout(30_000);
const skip = serviceMissing("NATS_URL") || serviceMissing("DATABASE_URL");
const log = createLogger("silent");
const A = { instance: "a", incarnation: "a-1" };
const B = { instance: "b", incarnation: "b-1" };

/** Polls `check` until it holds, bounded: the lease rounds are the event awaited here. */
async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(25);
  }
  return Date.now() - started;
}

describe.skipIf(skip)("leases on NATS KV", () => {
  let nc: NatsConnection;
  let bucket: LeaseBucket;
  const name = `test_leases_${crypto.randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    nc = await connect({ servers: natsUrl! });
    bucket = await LeaseBucket.open(nc, name, 1500);
  });
  afterAll(async () => {
    await nc.jetstreamManager().then((jsm) => jsm.streams.delete(`KV_${name}`)).catch(() => {});
    await nc.drain();
  });

  test("two contenders: one wins; the other gets null, not an exception", async () => {
    const [a, b] = await Promise.all([bucket.acquire("k1", A), bucket.acquire("k1", B)]);
    expect([a, b].filter((r) => r !== null)).toHaveLength(1);
    const winner = a !== null ? A : B;
    expect((await bucket.read("k1"))?.holder).toEqual(winner);
  });

  test("renewal at the held revision works; at a stale revision it is refused", async () => {
    const first = (await bucket.acquire("k2", A))!;
    const second = await bucket.renew("k2", A, first);
    expect(second).toBeGreaterThan(first);
    expect(await bucket.renew("k2", B, first)).toBeNull();
    expect((await bucket.read("k2"))?.holder).toEqual(A);
    // A release at a stale revision changes nothing; at the current one it frees the key.
    await bucket.release("k2", first);
    expect((await bucket.read("k2"))?.holder).toEqual(A);
    await bucket.release("k2", second!);
    expect(await bucket.read("k2")).toBeNull();
    expect(await bucket.acquire("k2", B)).not.toBeNull();
  });

  test("a lease nobody renews expires after the TTL, and the other contender takes it", async () => {
    expect(await bucket.acquire("k3", A)).not.toBeNull();
    expect(await bucket.acquire("k3", B)).toBeNull();
    const waited = await eventually(async () => (await bucket.acquire("k3", B)) !== null, 6000, "the lease to expire");
    expect(waited).toBeGreaterThan(500);
    expect((await bucket.read("k3"))?.holder).toEqual(B);
  });
});

describe.skipIf(skip)("shard ownership between instances", () => {
  const name = `test_owners_${crypto.randomUUID().slice(0, 8)}`;
  const connections: NatsConnection[] = [];
  const owners: ClusterOwnership[] = [];
  const lost = new Map<string, number[]>();

  async function instance(holder: typeof A): Promise<{ ownership: ClusterOwnership; nc: NatsConnection }> {
    const nc = await connect({ servers: natsUrl! });
    connections.push(nc);
    const hooks: OwnershipHooks = {
      shardLost: async (shard) => void (lost.get(holder.incarnation) ?? lost.set(holder.incarnation, []).get(holder.incarnation)!).push(shard),
      shardAcquired: () => {},
      leaderAcquired: async () => {},
      leaderLost: async () => {},
    };
    const ownership = new ClusterOwnership(await LeaseBucket.open(nc, name, 1500), holder, hooks, log, ["sync"]);
    owners.push(ownership);
    ownership.start();
    return { ownership, nc };
  }

  afterAll(async () => {
    await Promise.all(owners.map((o) => o.stop().catch(() => {})));
    const nc = await connect({ servers: natsUrl! });
    await nc.jetstreamManager().then((jsm) => jsm.streams.delete(`KV_${name}`)).catch(() => {});
    await nc.drain();
    await Promise.all(connections.map((c) => c.close().catch(() => {})));
  });

  test("two instances split the shards, one leader; a handover gives the other all of them at once; a cut-off owner fences itself", async () => {
    const a = await instance(A);
    const b = await instance(B);
    const split = () => {
      const sa = a.ownership.snapshot().shards;
      const sb = b.ownership.snapshot().shards;
      return sa.length + sb.length === SHARD_COUNT && sa.every((s) => !sb.includes(s)) && Math.abs(sa.length - sb.length) <= 1;
    };
    await eventually(split, 15_000, "the shards to split between two instances");
    const leaders = [a, b].filter((x) => x.ownership.isLeader("sync"));
    expect(leaders).toHaveLength(1);
    // Every channel has exactly one owner, and (once each has read the other's leases, a round later) both agree on who.
    const ids = Array.from({ length: 50 }, () => crypto.randomUUID());
    for (const id of ids) expect([a, b].filter((x) => x.ownership.holds(id))).toHaveLength(1);
    const ownerOf = (id: string) => [a, b].find((x) => x.ownership.holds(id))!.ownership.snapshot().incarnation;
    await eventually(() => ids.every((id) => a.ownership.ownerOf(id) === ownerOf(id) && b.ownership.ownerOf(id) === ownerOf(id)), 3000, "both to agree on the owners");

    // A hands over (SIGTERM): its leases are deleted, and B takes them well before a TTL passes.
    const handedOver = a.ownership.snapshot().shards;
    const lostBefore = lost.get(A.incarnation)?.length ?? 0;
    await a.ownership.handOver();
    expect(lost.get(A.incarnation)!.slice(lostBefore).sort((x, y) => x - y)).toEqual(handedOver);
    const took = await eventually(() => b.ownership.snapshot().shards.length === SHARD_COUNT, 10_000, "B to hold every shard");
    expect(took).toBeLessThan(1500);
    expect(b.ownership.isLeader("sync")).toBe(true);

    // B is cut off from NATS: within the TTL it stops trusting its leases and stops every shard.
    const bLostBefore = lost.get(B.incarnation)?.length ?? 0;
    await b.nc.close();
    const fenced = await eventually(() => b.ownership.snapshot().shards.length === 0, 5000, "B to stop trusting its leases");
    expect(fenced).toBeLessThan(1500);
    // ...and it stops every shard's actors on its own clock, though its lease round is stuck.
    const stopped = await eventually(() => (lost.get(B.incarnation)?.length ?? 0) - bLostBefore === SHARD_COUNT, 2000, "B to stop every shard");
    expect(fenced + stopped).toBeLessThan(1500);
    expect(b.ownership.holds(crypto.randomUUID())).toBe(false);
  });

  test("shardOf spreads channel ids over every shard", () => {
    const seen = new Set(Array.from({ length: 5000 }, () => shardOf(Bun.randomUUIDv7())));
    expect(seen.size).toBe(SHARD_COUNT);
  });
});

describe.skipIf(skip)("fencing in PostgreSQL", () => {
  let db: { url: string; drop: () => Promise<void> };
  let asA: Sql;
  let asB: Sql;
  let plain: Sql;
  const channelId = crypto.randomUUID();
  const resource = `channel:${channelId}`;
  const as = (url: string, who: string) =>
    postgres(url, { max: 2, onnotice: () => {}, connection: { application_name: "fence-test", "daarion.instance": who } as never }) as unknown as Sql;

  beforeAll(async () => {
    db = await freshPostgresDatabase("daarion_fence");
    plain = postgres(db.url, { max: 2, onnotice: () => {} }) as unknown as Sql;
    await migrate(plain, log);
    await plain`insert into channels (id, slug, name, microdao_id, matrix_room_id, created_by) values (${channelId}, 'fenced', 'Fenced', 'microdao:x', ${`!${channelId}:test`}, 'user:a')`;
    asA = as(db.url, A.incarnation);
    asB = as(db.url, B.incarnation);
  });
  afterAll(async () => {
    await Promise.all([asA?.end(), asB?.end(), plain?.end()]);
    await db?.drop();
  });

  const rename = (sql: Sql, name: string) => sql`update channels set name = ${name} where id = ${channelId}`;
  const nameNow = async () => (await plain<{ name: string }[]>`select name from channels where id = ${channelId}`)[0]!.name;

  test("a channel nobody claimed is not fenced; once claimed, only its owner writes", async () => {
    await rename(asB, "before any claim");
    expect(await nameNow()).toBe("before any claim");
    expect(await claimFence(plain, resource, A.incarnation)).toBe(1);
    await rename(asA, "by A");
    const refused = await rename(asB, "by B").catch((err) => err);
    expect(isFenced(refused)).toBe(true);
    expect(await nameNow()).toBe("by A");
  });

  test("an owner paused mid-transaction: the takeover waits for its write, and every later write of its is refused", async () => {
    const order: string[] = [];
    let resumeA!: () => void;
    const paused = new Promise<void>((resolve) => (resumeA = resolve));
    let wroteA!: () => void;
    const aWrote = new Promise<void>((resolve) => (wroteA = resolve));
    const inFlight = asA.begin(async (tx) => {
      await tx`update channels set name = 'A in flight' where id = ${channelId}`;
      wroteA();
      await paused;
      order.push("A committed");
    });
    await aWrote;
    const takeover = claimFence(asB, resource, B.incarnation).then((epoch) => {
      order.push("B claimed");
      return epoch;
    });
    // B's claim cannot commit while A's write holds the fence row: resume A only once B is waiting on it.
    await eventually(
      async () => (await plain`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`).length > 0,
      5000,
      "the takeover to wait for the lock",
    );
    resumeA();
    await inFlight;
    expect(await takeover).toBe(2);
    expect(order).toEqual(["A committed", "B claimed"]);
    expect(await nameNow()).toBe("A in flight");
    // A wakes up believing it still owns the channel: refused, nothing changes.
    const refused = await rename(asA, "A after losing").catch((err) => err);
    expect(isFenced(refused)).toBe(true);
    expect((refused as { code: string }).code).toBe("DA001");
    expect(await nameNow()).toBe("A in flight");
    await rename(asB, "by B");
    expect(await nameNow()).toBe("by B");
  });

  test("rows of a message are fenced by its channel; the tools' connections (no identity) are not", async () => {
    const messageId = crypto.randomUUID();
    await asB`insert into messages (id, channel_id, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id, content_preview, seq)
              values (${messageId}, ${channelId}, ${`$${messageId}`}, 'm.room.message', 'user:a', 'human', '@user-a:test', 'hi', 1)`;
    const reaction = (sql: Sql, emoji: string) =>
      sql`insert into message_reactions (message_id, reactor_id, reactor_type, emoji, matrix_event_id) values (${messageId}, 'user:a', 'human', ${emoji}, ${`$r${emoji}`})`;
    expect(isFenced(await reaction(asA, "👍").catch((err) => err))).toBe(true);
    await reaction(asB, "🎉");
    await reaction(plain, "🙂");
    const [row] = await plain<{ count: string }[]>`select count(*) from message_reactions where message_id = ${messageId}`;
    const count = row!.count;
    expect(Number(count)).toBe(2);
    expect(databaseUrl).not.toBeNull();
  });
});
