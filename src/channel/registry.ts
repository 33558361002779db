import { Channel, type ChannelDeps } from "./channel.ts";
import { AppError } from "../errors.ts";
import { acquire } from "../lifecycle/live.ts";
import { outsideRequest } from "../request-context.ts";

/**
 * Decides where a channel's actor lives. There is one instance today; a multi-instance
 * deployment replaces this with a lease so each channel's actor runs on exactly one instance.
 */
export interface Placement {
  isLocal(channelId: string): boolean;
}

export const singleInstance: Placement = { isLocal: () => true };

/** Spawns actors on first use, forgets them when they passivate, and stops them all on shutdown. */
export class ChannelRegistry {
  private readonly actors = new Map<string, Channel>();
  private stopping = false;
  /** Seq of channels whose actor passivated, for frames sent from outside a loop (typing timers). */
  private readonly lastSeqs = new Map<string, number>();
  private readonly stoppedListeners = new Set<(channelId: string) => void>();

  constructor(
    private readonly deps: ChannelDeps,
    private readonly placement: Placement = singleInstance,
  ) {}

  get(channelId: string): Channel {
    if (this.stopping) throw new AppError(503, "SHUTTING_DOWN", "the service is shutting down", { "Retry-After": "5" });
    if (!this.placement.isLocal(channelId)) throw new Error(`channel ${channelId} is owned by another instance`);
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

  /** Each running actor's mailbox depth, no channel named. */
  mailboxDepths(): number[] {
    return [...this.actors.values()].map((actor) => actor.queuedJobs);
  }

  /** Drains every mailbox, then resolves. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.actors.values()].map((a) => a.stop()));
    this.actors.clear();
  }
}
