import { Channel, type ChannelDeps } from "./channel.ts";
import { AppError } from "../errors.ts";
import { acquire } from "../lifecycle/live.ts";
import { outsideRequest } from "../request-context.ts";
import type { EphemeralEvent, MatrixEvent } from "../matrix/port.ts";
import type { MessageRow } from "../store/rows.ts";
import type { ArgsOf, CommandName, ResultOf } from "./commands.ts";
import type { ChannelContext } from "./context.ts";
import type { SendCommand } from "./outbox.ts";
import { NotOwnerError, type ChannelOp, type ChannelRouter } from "./router.ts";

/**
 * Decides where a channel's actor lives: here on a single instance; in a cluster, where the
 * channel's shard lease is (src/cluster/ownership.ts).
 */
export interface Placement {
  isLocal(channelId: string): boolean;
}

export const singleInstance: Placement = { isLocal: () => true };

export interface SendOutcome {
  row: MessageRow;
  /** True when Matrix confirmed within the wait (201); false when it is still pending (202). */
  confirmed: boolean;
}

/**
 * Spawns actors on first use, forgets them when they passivate, and stops them all on
 * shutdown. Callers ask by channel and op; with a router (cluster mode) the op goes to the
 * channel's owner, which may be this instance.
 */
export class ChannelRegistry {
  private readonly actors = new Map<string, Channel>();
  private stopping = false;
  /** Seq of channels whose actor passivated, for frames sent from outside a loop (typing timers). */
  private readonly lastSeqs = new Map<string, number>();
  private readonly stoppedListeners = new Set<(channelId: string) => void>();
  private router: ChannelRouter | null = null;

  constructor(
    private readonly deps: ChannelDeps,
    private placement: Placement = singleInstance,
  ) {}

  /** Cluster mode: ops go through the router, and actors run only where the placement says. */
  routeThrough(router: ChannelRouter, placement: Placement): void {
    this.router = router;
    this.placement = placement;
  }

  /** Runs a feature's command, by name, in the channel's loop (on its owner). */
  run<K extends CommandName>(channelId: string, name: K, args: ArgsOf<K>): Promise<ResultOf<K>> {
    return this.dispatch(channelId, { kind: "run", name, args }) as Promise<ResultOf<K>>;
  }

  /**
   * Sends through the channel's outbox and waits up to `confirmWithinMs` for Matrix's
   * confirmation. The message is durable once accepted; if the wait runs out it is answered as
   * pending, and a message.updated (or message.failed) follows on the channel's WebSocket.
   */
  send(channelId: string, cmd: SendCommand, confirmWithinMs: number): Promise<SendOutcome> {
    // Chosen here, not by the owner: a retry of this op (to a new owner) finds the first attempt.
    if (!cmd.id) cmd = { ...cmd, id: Bun.randomUUIDv7(), newId: true };
    return this.dispatch(channelId, { kind: "send", cmd, confirmWithinMs }) as Promise<SendOutcome>;
  }

  /** A room's events in timeline order, as one job of the channel. */
  ingestAll(channelId: string, events: MatrixEvent[], unindexed: string[] = []): Promise<void> {
    return this.dispatch(channelId, { kind: "ingest", events, unindexed }) as Promise<void>;
  }

  /** Typing or a receipt from Matrix, queued behind the channel's work. */
  ingestEphemeral(channelId: string, event: EphemeralEvent): Promise<void> {
    return this.dispatch(channelId, { kind: "ephemeral", event }) as Promise<void>;
  }

  /** A read-only job in the loop of the channel's actor on this instance (a single instance's WebSocket replay). */
  observe<T>(channelId: string, fn: (ctx: ChannelContext) => Promise<T>): Promise<T> {
    return this.get(channelId).observe(fn);
  }

  private dispatch(channelId: string, op: ChannelOp): Promise<unknown> {
    return this.router ? this.router.dispatch(channelId, op) : this.execute(channelId, op);
  }

  /** Runs an op on this instance's actor; NotOwnerError when the channel is not placed here. */
  async execute(channelId: string, op: ChannelOp): Promise<unknown> {
    const actor = this.get(channelId);
    switch (op.kind) {
      case "run":
        return actor.run(op.name as CommandName, op.args as never);
      case "send":
        return confirmWithin(actor, op.cmd, op.confirmWithinMs);
      case "ingest":
        return actor.ingestAll(op.events, op.unindexed ?? []);
      case "ephemeral":
        return actor.ingestEphemeral(op.event);
    }
  }

  /** This instance's actor for the channel, spawned if needed; NotOwnerError when it is placed elsewhere. */
  get(channelId: string): Channel {
    if (this.stopping) throw new AppError(503, "SHUTTING_DOWN", "the service is shutting down", { "Retry-After": "5" });
    if (!this.placement.isLocal(channelId)) throw new NotOwnerError(channelId);
    let actor = this.actors.get(channelId);
    if (!actor) {
      const release = acquire("actors");
      // The loop outlives the request that happens to spawn it and serves others: its log
      // lines name the channel, never that one request's id.
      const spawned = outsideRequest(
        () =>
          new Channel(channelId, this.deps, (stopped) => {
            release();
            this.lastSeqs.set(channelId, stopped.currentSeq);
            if (this.actors.get(channelId) === stopped) this.actors.delete(channelId);
            for (const listener of this.stoppedListeners) listener(channelId);
          }),
      );
      this.actors.set(channelId, spawned);
      actor = spawned;
    }
    return actor;
  }

  /** Starts the channel's actor if it is placed here (its pending sends resume as it starts). */
  wake(channelId: string): void {
    if (this.stopping || !this.placement.isLocal(channelId)) return;
    this.get(channelId);
  }

  /** Called whenever an actor passivates or stops; returns an unsubscribe function. */
  onActorStopped(listener: (channelId: string) => void): () => void {
    this.stoppedListeners.add(listener);
    return () => this.stoppedListeners.delete(listener);
  }

  /** The channel's latest message seq as its actor (running or last stopped) knows it; 0 if none ran. */
  seqOf(channelId: string): number {
    // A fresh actor reads its seq from the index while it starts; until then the last one's counts.
    return Math.max(this.actors.get(channelId)?.currentSeq ?? 0, this.lastSeqs.get(channelId) ?? 0);
  }

  has(channelId: string): boolean {
    return this.actors.has(channelId);
  }

  get size(): number {
    return this.actors.size;
  }

  /** The channels whose actor runs here. */
  channelIds(): string[] {
    return [...this.actors.keys()];
  }

  /** Each running actor's mailbox depth, no channel named. */
  mailboxDepths(): number[] {
    return [...this.actors.values()].map((actor) => actor.queuedJobs);
  }

  /** Drains and stops the actors of the channels that match (a shard given up), then resolves. */
  async stopWhere(matches: (channelId: string) => boolean): Promise<void> {
    const stopping = [...this.actors].filter(([id]) => matches(id));
    await Promise.all(stopping.map(([, actor]) => actor.stop()));
    for (const [id, actor] of stopping) if (this.actors.get(id) === actor) this.actors.delete(id);
  }

  /** Drains every mailbox, then resolves. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.actors.values()].map((a) => a.stop()));
    this.actors.clear();
  }
}

async function confirmWithin(actor: Channel, cmd: SendCommand, confirmWithinMs: number): Promise<SendOutcome> {
  const started = Date.now();
  const { accepted, delivered } = actor.submit(cmd);
  const pending = await accepted;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), Math.max(0, confirmWithinMs - (Date.now() - started)));
  });
  try {
    const sent = await Promise.race([delivered, timedOut]);
    return sent ? { row: sent, confirmed: true } : { row: pending, confirmed: false };
  } finally {
    clearTimeout(timer);
  }
}
