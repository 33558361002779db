import type { NatsConnection, Subscription } from "nats";
import type { Logger } from "../log.ts";
import type { Sql } from "../store/db.ts";
import { lastSeq, messagesAfter } from "../store/messages.ts";
import { framesOf } from "../realtime/replay.ts";
import type { ChannelFanout } from "../realtime/fanout.ts";
import type { SocketRegistry } from "../realtime/sockets.ts";
import type { ChannelObserver } from "../realtime/deps.ts";
import { frameSubject, type RelayedFrame } from "./frames.ts";

const REPAIR_PAGE = 200;
/** "Service restart": the client should reconnect (to another instance) and resume with since_seq. */
export const CLOSE_CUT_OFF = 1012;
/** How often a quiet channel's relay compares its last seq with the index (a lost last frame). */
const CHECK_EVERY_MS = 3000;
/** How long a join whose replay read past the relay waits for those frames to come live before they are repaired. */
const JOIN_CATCH_UP_MS = 1000;

interface Relayed {
  subscription: Subscription;
  /** Frames and replays of this channel, one after another. */
  queue: Promise<void>;
  epoch: number;
  n: number;
  /** The last message seq delivered here (message.created, live or repaired). */
  seq: number;
  lastActivity: number;
  /** The index's last seq at the previous quiet check: a frame not here by the next check was lost. */
  indexMark: number;
  /** Joins waiting for the relay to deliver up to a seq (see observe). */
  catchUps: Array<{ seq: number; done: () => void }>;
}

/**
 * An instance's side of cross-instance fan-out: for each channel with sockets here, the frames
 * its owner publishes (src/cluster/frames.ts) go to the local subscribers once and in order.
 * message.created frames must come in seq order without a hole; a hole (a frame lost on a
 * reconnect, an owner killed between writing and publishing) is filled from the index first,
 * and a message.created that arrives after its message was repaired goes out as
 * message.updated. Frames of an older epoch (a paused old owner) and repeated frames are dropped.
 */
export class FrameRelay implements ChannelObserver {
  private readonly channels = new Map<string, Relayed>();
  private readonly decoder = new TextDecoder();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly nc: NatsConnection,
    private readonly sql: Sql,
    private readonly fanout: ChannelFanout,
    private readonly sockets: SocketRegistry,
    private readonly log: Logger,
    private readonly cutOffAfterMs: number,
    private readonly cluster: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.checkQuietChannels(), CHECK_EVERY_MS);
    void this.watchReconnects();
  }

  /** The first local subscriber of a channel: start relaying its frames. */
  follow(channelId: string): void {
    if (this.channels.has(channelId)) return;
    const relayed: Relayed = {
      subscription: this.nc.subscribe(frameSubject(this.cluster, channelId), {
        callback: (err, msg) => {
          if (err) return;
          const frame = JSON.parse(this.decoder.decode(msg.data)) as RelayedFrame;
          this.enqueue(relayed, () => this.handle(channelId, relayed, frame));
        },
      }),
      queue: Promise.resolve(),
      epoch: 0,
      n: 0,
      seq: 0,
      lastActivity: Date.now(),
      indexMark: 0,
      catchUps: [],
    };
    this.channels.set(channelId, relayed);
    // Subscribed first, then the index read: a frame after this point is either in it or queued behind it.
    this.enqueue(relayed, async () => {
      // Once the server has our subscription, every later frame reaches us.
      await this.nc.flush();
      this.advanced(relayed, await lastSeq(this.sql, channelId));
    });
  }

  /** The last local subscriber left. */
  unfollow(channelId: string): void {
    const relayed = this.channels.get(channelId);
    if (!relayed) return;
    this.channels.delete(channelId);
    relayed.subscription.unsubscribe();
    for (const entry of relayed.catchUps) entry.done();
  }

  async observe<T>(channelId: string, fn: (point: { seq: number }) => Promise<T>, reached = 0): Promise<T> {
    this.follow(channelId);
    const waited = this.channels.get(channelId)!;
    // A socket whose replay read the index further than the relay has come (a join while
    // messages are sent) waits for those frames, on their way, to arrive live. Repairing the
    // relay ahead of them would turn each into a message.updated for every socket here.
    if (waited.seq < reached) await this.catchUp(waited, reached);
    // The channel's last socket may have left meanwhile, and its relay with it.
    this.follow(channelId);
    const relayed = this.channels.get(channelId)!;
    return new Promise<T>((resolve, reject) => {
      this.enqueue(relayed, async () => {
        // At the last seq delivered here: the frames behind it in this queue continue exactly
        // from it. Only a frame that did not come in time (lost) is repaired, so that it does
        // not reach this socket twice. A plain join reads nothing here.
        if (relayed.seq < reached) await this.repair(channelId, relayed, reached);
        await fn({ seq: relayed.seq }).then(resolve, reject);
        // A replay whose socket went away before it subscribed leaves nobody to relay to.
        if (!this.fanout.hasSubscribers(channelId)) this.unfollow(channelId);
      });
    });
  }

  /** Resolves once the relay delivered up to `seq`, or after JOIN_CATCH_UP_MS. */
  private catchUp(relayed: Relayed, seq: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        seq,
        done: () => {
          clearTimeout(timer);
          relayed.catchUps = relayed.catchUps.filter((e) => e !== entry);
          resolve();
        },
      };
      const timer = setTimeout(entry.done, JOIN_CATCH_UP_MS);
      relayed.catchUps.push(entry);
    });
  }

  private advanced(relayed: Relayed, seq: number): void {
    relayed.seq = seq;
    for (const entry of relayed.catchUps) if (entry.seq <= seq) entry.done();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const channelId of [...this.channels.keys()]) this.unfollow(channelId);
  }

  private enqueue(relayed: Relayed, job: () => Promise<void>): void {
    relayed.queue = relayed.queue.then(job).catch((err) => this.log.warn({ err: String(err) }, "frame relay step failed"));
  }

  private async handle(channelId: string, relayed: Relayed, frame: RelayedFrame): Promise<void> {
    if (this.channels.get(channelId) !== relayed) return;
    if (frame.e < relayed.epoch || (frame.e === relayed.epoch && frame.n <= relayed.n)) return;
    const gap = relayed.epoch !== 0 && (frame.e !== relayed.epoch || frame.n !== relayed.n + 1);
    relayed.epoch = frame.e;
    relayed.n = frame.n;
    relayed.lastActivity = Date.now();
    if (frame.revoke) {
      this.sockets.revoke(channelId, frame.revoke.memberId, frame.revoke.reason);
      return;
    }
    if (frame.recheck) {
      this.sockets.revokeUnless(channelId, frame.recheck.rule, frame.recheck.reason);
      return;
    }
    if (frame.k === "message.created") {
      if (frame.s <= relayed.seq) {
        // Already delivered by a repair: what it says now is an update.
        this.fanout.publish(channelId, JSON.stringify({ ...JSON.parse(frame.d!), type: "message.updated" }));
        return;
      }
      if (frame.s > relayed.seq + 1) await this.repair(channelId, relayed, frame.s - 1);
      this.fanout.publish(channelId, frame.d!);
      this.advanced(relayed, frame.s);
      return;
    }
    if (gap) await this.repair(channelId, relayed, Number.MAX_SAFE_INTEGER);
    this.fanout.publish(channelId, frame.d!);
  }

  /** Sends the messages after the relay's last seq (up to `upTo`) from the index, as replays send them. */
  private async repair(channelId: string, relayed: Relayed, upTo: number): Promise<void> {
    for (;;) {
      const rows = (await messagesAfter(this.sql, channelId, relayed.seq, REPAIR_PAGE)).filter((row) => Number(row.seq) <= upTo);
      if (rows.length === 0) return;
      for (const frame of await framesOf(this.sql, rows)) {
        if (frame.seq !== relayed.seq + 1) this.log.warn({ channel_id: channelId, from: relayed.seq, to: frame.seq }, "frame relay: hole in the index");
        this.fanout.publish(channelId, frame.data);
        this.advanced(relayed, frame.seq);
      }
      if (rows.length < REPAIR_PAGE) return;
    }
  }

  /**
   * A quiet channel's lost last frame: what the index had at the previous check and has still
   * not come live is repaired now (a frame merely in flight would have come long since).
   */
  private checkQuietChannels(): void {
    const now = Date.now();
    for (const [channelId, relayed] of this.channels) {
      if (now - relayed.lastActivity < CHECK_EVERY_MS) continue;
      this.enqueue(relayed, async () => {
        if (relayed.seq < relayed.indexMark) await this.repair(channelId, relayed, relayed.indexMark);
        relayed.indexMark = await lastSeq(this.sql, channelId);
      });
    }
  }

  /**
   * After a reconnect frames may have been missed: every relayed channel catches up from the
   * index. Cut off from NATS for longer than a lease lives, this instance's sockets would hear
   * nothing more: they are closed with 1012 so their clients resume with since_seq elsewhere.
   */
  private async watchReconnects(): Promise<void> {
    let cutOff: ReturnType<typeof setTimeout> | null = null;
    for await (const status of this.nc.status()) {
      if (status.type === "disconnect" && !cutOff) {
        cutOff = setTimeout(() => {
          this.log.warn("cut off from NATS: closing this instance's sockets so their clients resume elsewhere");
          this.fanout.closeAll(CLOSE_CUT_OFF, "this instance lost its cluster link: reconnect with since_seq");
          for (const channelId of [...this.channels.keys()]) this.unfollow(channelId);
        }, this.cutOffAfterMs);
      }
      if (status.type !== "reconnect") continue;
      if (cutOff) clearTimeout(cutOff);
      cutOff = null;
      for (const [channelId, relayed] of this.channels) this.enqueue(relayed, () => this.repair(channelId, relayed, Number.MAX_SAFE_INTEGER));
    }
  }
}
