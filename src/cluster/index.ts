import { connect, type NatsConnection, type Subscription } from "nats";
import type { Logger } from "../log.ts";
import type { Sql } from "../store/db.ts";
import { channelResource, claimFence } from "../store/fences.ts";
import { channelsWithPendingSends } from "../store/messages.ts";
import type { ChannelRegistry } from "../channel/registry.ts";
import type { ServerFrame } from "../wire/frames.ts";
import type { InboxDispatcher } from "../inbound/dispatcher.ts";
import type { ChannelFanout } from "../realtime/fanout.ts";
import type { SocketRegistry } from "../realtime/sockets.ts";
import type { NatsEventBus } from "../events/nats.ts";
import { LeaseBucket, type LeaseHolder } from "./leases.ts";
import { ClusterOwnership, type OwnershipSnapshot } from "./ownership.ts";
import { CommandForwarding } from "./forward.ts";
import { FramePublisher } from "./frames.ts";
import { FrameRelay } from "./relay.ts";
import { shardOf } from "./shards.ts";

export const leaseBucket = (cluster: string) => `${cluster}_leases`;
const inboxWake = (cluster: string) => `daarion.cluster.${cluster}.inbox.wake`;
const outboxWake = (cluster: string) => `daarion.cluster.${cluster}.outbox.wake`;
/** The elected roles: the Matrix events (the /sync poller and the inbox), and the event-outbox flusher. */
export const ROLES = ["sync", "outbox"] as const;
/** A leader also looks at its queue this often, in case a wake-up was lost. */
const LEADER_SWEEP_MS = 2000;

export interface ClusterOptions {
  natsUrl: string;
  /** CLUSTER_NAME: the lease bucket and the wake-up subjects are the cluster's own. */
  name: string;
  instance: string;
  incarnation: string;
  leaseTtlMs: number;
  ownerWaitMs: number;
  log: Logger;
}

/** What the leader of "sync" runs: the /sync poller in sync mode (push mode needs none). */
export interface SyncLeadership {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Cluster mode's parts, on one NATS connection of their own: the leases, the fences claimed in
 * PostgreSQL, op forwarding to owners, the frame relay, and the two leader roles. Created in
 * two steps because the channel registry needs the frame publisher and the fence claim, and
 * the ownership needs the registry.
 */
export class Cluster {
  readonly publisher: FramePublisher;
  private ownership: ClusterOwnership | null = null;
  private forwarding: CommandForwarding | null = null;
  private relay: FrameRelay | null = null;
  private readonly subscriptions: Subscription[] = [];
  private sweep: ReturnType<typeof setInterval> | null = null;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly leases: LeaseBucket,
    private readonly opts: ClusterOptions,
    private readonly sql: Sql,
  ) {
    this.publisher = new FramePublisher(nc, opts.name);
  }

  static async connect(opts: ClusterOptions, sql: Sql): Promise<Cluster> {
    const nc = await connect({ servers: opts.natsUrl, name: `daarion-messaging-cluster-${opts.incarnation}`, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
    try {
      const leases = await LeaseBucket.open(nc, leaseBucket(opts.name), opts.leaseTtlMs);
      return new Cluster(nc, leases, opts, sql);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  get holder(): LeaseHolder {
    return { instance: this.opts.instance, incarnation: this.opts.incarnation };
  }

  /** For the channel actors: the fence claim at start, and the ownership check before a Matrix call. */
  readonly claim = async (channelId: string): Promise<number> => {
    const epoch = await claimFence(this.sql, channelResource(channelId), this.opts.incarnation);
    this.publisher.begin(channelId, epoch);
    this.opts.log.info({ channel_id: channelId, epoch }, "channel claimed");
    return epoch;
  };

  readonly stillOwner = (channelId: string): boolean => this.ownership?.mayAct(channelId) ?? false;

  readonly broadcast = (channelId: string, frame: ServerFrame): void => this.publisher.publish(channelId, frame);

  /** Second step: everything that needs the registry; starts taking leases. */
  start(parts: { registry: ChannelRegistry; fanout: ChannelFanout; sockets: SocketRegistry; dispatcher: InboxDispatcher; events: NatsEventBus; sync: SyncLeadership; onFirstRound: () => void }): void {
    const { registry, fanout, sockets, dispatcher, events, sync, log } = { ...parts, log: this.opts.log };
    const ownership = new ClusterOwnership(
      this.leases,
      this.holder,
      {
        shardLost: async (shard) => {
          const inShard = (id: string) => shardOf(id) === shard;
          await registry.stopWhere(inShard);
        },
        shardAcquired: (shard) => {
          // Sends a dead owner accepted but did not deliver: started here, they resume (looking in the room first).
          void channelsWithPendingSends(this.sql)
            .then((ids) => ids.filter((id) => shardOf(id) === shard).forEach((id) => registry.wake(id)))
            .catch((err) => log.warn({ shard, err: String(err) }, "could not look for pending sends"));
        },
        leaderAcquired: async (role) => {
          await claimFence(this.sql, `leader:${role}`, this.opts.incarnation);
          if (role === "outbox") events.setLeading(true);
          if (role === "sync") {
            await sync.start();
            void dispatcher.drain();
          }
        },
        leaderLost: async (role) => {
          if (role === "outbox") events.setLeading(false);
          if (role === "sync") await sync.stop();
        },
      },
      log.child({ component: "cluster" }),
      ROLES,
    );
    this.ownership = ownership;
    this.forwarding = new CommandForwarding(this.nc, this.opts.incarnation, ownership, registry, this.opts.ownerWaitMs, log.child({ component: "cluster" }), this.opts.name);
    this.forwarding.serve();
    registry.routeThrough(this.forwarding, { isLocal: (id) => ownership.holds(id) });
    this.relay = new FrameRelay(this.nc, this.sql, fanout, sockets, log.child({ component: "frame-relay" }), this.opts.leaseTtlMs, this.opts.name);
    fanout.followWith(this.relay);
    this.relay.start();

    const [inboxSubject, outboxSubject] = [inboxWake(this.opts.name), outboxWake(this.opts.name)];
    events.shareFlushing(() => this.nc.publish(outboxSubject));
    dispatcher.shareDraining({ isLeader: () => ownership.isLeader("sync"), wakeLeader: () => this.nc.publish(inboxSubject) });
    this.subscriptions.push(
      this.nc.subscribe(outboxSubject, { callback: () => ownership.isLeader("outbox") && events.flushSoon() }),
      this.nc.subscribe(inboxSubject, { callback: () => ownership.isLeader("sync") && void dispatcher.drain() }),
    );
    this.sweep = setInterval(() => {
      if (ownership.isLeader("outbox")) events.flushSoon();
      if (ownership.isLeader("sync")) void dispatcher.drain();
    }, LEADER_SWEEP_MS);
    ownership.start();
    void ownership.nextRound(this.opts.leaseTtlMs).then(parts.onFirstRound);
  }

  get observer(): FrameRelay {
    return this.relay!;
  }

  snapshot(): OwnershipSnapshot | null {
    return this.ownership?.snapshot() ?? null;
  }

  ownerOf(channelId: string): { shard: number; owner: string | null } {
    return { shard: shardOf(channelId), owner: this.ownership?.ownerOf(channelId) ?? null };
  }

  /** A round trip to NATS (readiness): an instance cut off from NATS cannot own anything. */
  async ping(timeoutMs: number): Promise<void> {
    if (this.nc.isClosed()) throw new Error("cluster NATS connection closed");
    await Promise.race([this.nc.flush(), Bun.sleep(timeoutMs).then(() => Promise.reject(new Error("NATS did not answer")))]);
  }

  /** SIGTERM's first step: hands every shard and role over (drained), so the others take them at once. */
  async handOver(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    await this.ownership?.handOver();
  }

  get handingOver(): boolean {
    return this.ownership?.isHandingOver ?? false;
  }

  /** After the HTTP server stopped: no op is forwarded any more. */
  async close(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    await this.ownership?.stop();
    this.relay?.stop();
    await this.forwarding?.stop();
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
