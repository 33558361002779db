import type { Logger } from "../log.ts";
import { backoffDelay } from "../backoff.ts";
import { withTimeout } from "../deadline.ts";
import type { LeaseBucket, LeaseHolder } from "./leases.ts";
import { leaderKey, memberKey, SHARD_COUNT, shardKey, shardOf } from "./shards.ts";

/** What the instance does when it gains or loses a lease. */
export interface OwnershipHooks {
  /** Drains and stops the shard's actors; resolves once they stopped. */
  shardLost(shard: number): Promise<void>;
  /** A shard came to this instance: start the actors that have pending sends. */
  shardAcquired(shard: number): void;
  /** Claims the role's fence and starts it (the /sync poller, the event-outbox flusher). */
  leaderAcquired(role: string): Promise<void>;
  leaderLost(role: string): Promise<void>;
}

interface Held {
  revision: number;
  /** When the last renewal succeeded (this process's clock). */
  renewedAt: number;
  releasing: boolean;
}

export interface OwnershipSnapshot {
  instance: string;
  incarnation: string;
  members: number;
  shards: number[];
  leaders: string[];
  owners: Record<string, string>;
}

/** Most shards given up per round when the instance holds more than its share: a smooth rebalance. */
const RELEASES_PER_ROUND = 4;

/**
 * This instance's leases: a fair share of the channel shards (ceil(shards / live instances)),
 * and the leader roles when free. Renewed every TTL/4; a lease that could not be renewed for
 * TTL minus a margin counts as lost here (self-fencing) even if NATS still has it, and a lease
 * whose revision changed is lost at once. Who holds each shard is read every round (an
 * expired lease leaves no marker on NATS 2.9), so requests can be sent to the owner.
 */
export class ClusterOwnership {
  private readonly held = new Map<string, Held>();
  private readonly owners = new Map<number, string>();
  private members = 1;
  private stopped = false;
  private handingOver = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** A wake-up that came during a round: the next round starts at once. */
  private woken = false;
  private readonly roundWaiters = new Set<() => void>();
  private stopWatch: (() => void) | null = null;
  private failures = 0;
  private fenceTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly leases: LeaseBucket,
    private readonly me: LeaseHolder,
    private readonly hooks: OwnershipHooks,
    private readonly log: Logger,
    private readonly roles: readonly string[],
  ) {}

  private get ttl() {
    return this.leases.ttlMs;
  }

  /** A lease is trusted for TTL minus this margin after its last renewal. */
  private get margin() {
    return Math.max(250, Math.floor(this.ttl / 5));
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
    // On its own clock: a round stuck on an unreachable NATS must not keep a lease trusted.
    this.fenceTimer = setInterval(() => void this.selfFence(), Math.max(50, Math.floor(this.margin / 2)));
    // A released lease (a rolling restart) is taken at once, not at the next round.
    void this.leases
      .watchReleases(">", () => this.poke())
      .then((stop) => (this.stopped ? stop() : (this.stopWatch = stop)))
      .catch((err) => this.log.warn({ err: String(err) }, "could not watch the lease bucket; relying on rounds"));
  }

  /** True when this instance may run (and write for) the channel now. */
  holds(channelId: string): boolean {
    return this.trusted(shardKey(shardOf(channelId)));
  }

  /**
   * True while the lease is still this instance's, including while it drains the shard to hand
   * it over: its actors may finish their Matrix calls, though no new work is taken.
   */
  mayAct(channelId: string): boolean {
    const lease = this.held.get(shardKey(shardOf(channelId)));
    return !!lease && Date.now() - lease.renewedAt < this.ttl - this.margin;
  }

  isLeader(role: string): boolean {
    return this.trusted(leaderKey(role));
  }

  /** The incarnation that held the channel's shard at the last round, if any. */
  ownerOf(channelId: string): string | null {
    const shard = shardOf(channelId);
    if (this.trusted(shardKey(shard))) return this.me.incarnation;
    const owner = this.owners.get(shard);
    return owner && owner !== this.me.incarnation ? owner : null;
  }

  /** Resolves after the next round (or after timeoutMs), when ownership may have changed. */
  nextRound(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.roundWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      this.roundWaiters.add(done);
    });
  }

  snapshot(): OwnershipSnapshot {
    const shards = [...this.held.keys()].filter((k) => k.startsWith("shard.") && this.trusted(k)).map((k) => Number(k.slice(6)));
    const leaders = this.roles.filter((role) => this.trusted(leaderKey(role)));
    const owners: Record<string, string> = {};
    for (const [shard, owner] of this.owners) if (owner !== this.me.incarnation) owners[shard] = owner;
    for (const shard of shards) owners[shard] = this.me.incarnation;
    return { instance: this.me.instance, incarnation: this.me.incarnation, members: this.members, shards: shards.sort((a, b) => a - b), leaders, owners };
  }

  /**
   * SIGTERM: stops taking leases, drains and stops each shard's actors and each role, then
   * deletes the leases so the other instances take them at once instead of after the TTL.
   */
  async handOver(): Promise<void> {
    if (this.handingOver) return;
    this.handingOver = true;
    const keys = [...this.held.keys()];
    await this.leases.remove(memberKey(this.me.incarnation)).catch(() => {});
    await Promise.all(keys.map((key) => this.release(key, "shutting down")));
    this.poke();
  }

  get isHandingOver(): boolean {
    return this.handingOver;
  }

  async stop(): Promise<void> {
    await this.handOver();
    this.stopped = true;
    if (this.fenceTimer) clearInterval(this.fenceTimer);
    this.stopWatch?.();
    this.poke();
    await this.loop;
  }

  private poke(): void {
    if (this.wake) this.wake();
    else this.woken = true;
  }

  private trusted(key: string): boolean {
    const lease = this.held.get(key);
    return !!lease && !lease.releasing && Date.now() - lease.renewedAt < this.ttl - this.margin;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      this.woken = false;
      try {
        // Bounded: a round that hangs (NATS gone mid-request) counts as failed.
        await withTimeout(this.round(), this.ttl);
        if (this.failures > 0) this.log.info("cluster leases reachable again");
        this.failures = 0;
      } catch (err) {
        if (this.failures++ === 0) this.log.warn({ err: String(err) }, "cluster lease round failed (NATS unreachable?)");
      }
      // Whatever could not be renewed in time is given up here, even while NATS is away.
      await this.selfFence();
      for (const done of [...this.roundWaiters]) done();
      if (this.stopped) break;
      if (this.woken) {
        this.woken = false;
        continue;
      }
      const pause = this.failures > 0 ? Math.min(this.ttl / 4, backoffDelay(this.failures, { baseMs: 100, capMs: this.ttl / 4 })) : this.ttl / 4;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pause);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  private async round(): Promise<void> {
    if (!this.handingOver) await this.leases.put(memberKey(this.me.incarnation), this.me);
    await Promise.all([...this.held].filter(([, lease]) => !lease.releasing).map(([key, lease]) => this.renew(key, lease)));
    // Handing over, it still learns who took its shards, to forward what still arrives here.
    await this.readOwners();
    if (this.handingOver) return;
    // Distinct: a key rewritten while it is listed can be listed twice.
    this.members = Math.max(1, new Set(await this.leases.keys("member.>")).size);
    await this.balance();
    for (const role of this.roles) if (!this.held.has(leaderKey(role))) await this.tryLead(role);
  }

  private async renew(key: string, lease: Held): Promise<void> {
    // The lease runs from when the renewal was sent, not from when its answer came back.
    const sentAt = Date.now();
    const revision = await this.leases.renew(key, this.me, lease.revision);
    // Given up while the renewal was in flight: release() deals with the revision it left.
    if (lease.releasing) return;
    if (revision === null) {
      await this.lose(key, "its lease was taken over");
      return;
    }
    lease.revision = revision;
    lease.renewedAt = sentAt;
  }

  private async selfFence(): Promise<void> {
    for (const [key, lease] of [...this.held]) {
      if (!lease.releasing && Date.now() - lease.renewedAt >= this.ttl - this.margin) await this.lose(key, "its lease could not be renewed in time");
    }
  }

  private async readOwners(): Promise<void> {
    const shards = Array.from({ length: SHARD_COUNT }, (_, shard) => shard);
    const holders = await Promise.all(shards.map((shard) => this.leases.read(shardKey(shard))));
    shards.forEach((shard, i) => {
      const holder = holders[i];
      if (holder) this.owners.set(shard, holder.holder.incarnation);
      else this.owners.delete(shard);
    });
  }

  /** Takes free shards up to the fair share; gives back the excess a few at a time. */
  private async balance(): Promise<void> {
    const fair = Math.ceil(SHARD_COUNT / this.members);
    const mine = [...this.held.keys()].filter((key) => key.startsWith("shard."));
    if (mine.length < fair) {
      const free = shuffled(Array.from({ length: SHARD_COUNT }, (_, shard) => shard).filter((shard) => !this.owners.has(shard)));
      for (const shard of free.slice(0, fair - mine.length)) {
        const key = shardKey(shard);
        const sentAt = Date.now();
        const revision = await this.leases.acquire(key, this.me);
        if (revision === null) continue;
        this.held.set(key, { revision, renewedAt: sentAt, releasing: false });
        this.owners.set(shard, this.me.incarnation);
        this.log.info({ shard }, "shard acquired");
        this.hooks.shardAcquired(shard);
      }
    } else if (mine.length > fair) {
      const excess = mine.slice(0, Math.min(RELEASES_PER_ROUND, mine.length - fair));
      await Promise.all(excess.map((key) => this.release(key, "rebalancing")));
    }
  }

  private async tryLead(role: string): Promise<void> {
    const key = leaderKey(role);
    if (await this.leases.read(key)) return;
    const sentAt = Date.now();
    const revision = await this.leases.acquire(key, this.me);
    if (revision === null) return;
    this.held.set(key, { revision, renewedAt: sentAt, releasing: false });
    this.log.info({ role }, "leader lease acquired");
    try {
      await this.hooks.leaderAcquired(role);
    } catch (err) {
      this.log.warn({ role, err: String(err) }, "could not start as leader; giving the lease back");
      await this.release(key, "leader start failed");
    }
  }

  /** Gives a lease up after stopping what it guards. */
  private async release(key: string, reason: string): Promise<void> {
    const lease = this.held.get(key);
    if (!lease || lease.releasing) return;
    lease.releasing = true;
    await this.stopGuarded(key, reason);
    this.held.delete(key);
    try {
      // A renewal in flight may have moved the revision on: release the one that is ours now.
      if (!(await this.leases.release(key, lease.revision))) {
        const current = await this.leases.read(key);
        if (current?.holder.incarnation === this.me.incarnation) await this.leases.release(key, current.revision);
      }
    } catch (err) {
      this.log.warn({ key, err: String(err) }, "could not release a lease; it expires by itself");
    }
  }

  /** The lease is gone (taken over, or not renewable): stop what it guards, at once. */
  private async lose(key: string, reason: string): Promise<void> {
    const lease = this.held.get(key);
    if (!lease || lease.releasing) return;
    lease.releasing = true;
    await this.stopGuarded(key, reason);
    this.held.delete(key);
  }

  private async stopGuarded(key: string, reason: string): Promise<void> {
    try {
      if (key.startsWith("shard.")) {
        const shard = Number(key.slice(6));
        this.log.info({ shard, reason }, "shard released");
        await this.hooks.shardLost(shard);
      } else {
        const role = key.slice("leader.".length);
        this.log.info({ role, reason }, "leader lease released");
        await this.hooks.leaderLost(role);
      }
    } catch (err) {
      this.log.error({ key, err: String(err) }, "error while stopping what a lease guarded");
    }
  }
}

function shuffled<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
