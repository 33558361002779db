import type { Metrics } from "../metrics/metrics.ts";

/** What the fan-out needs of a socket: Bun's ServerWebSocket. */
export interface LiveSocket {
  send(data: string): number;
  close(code?: number, reason?: string): void;
  getBufferedAmount(): number;
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  readonly readyState: number;
}

/** Close code for a subscriber that let more than WS_BACKPRESSURE_LIMIT_BYTES pile up. */
export const CLOSE_SLOW_CONSUMER = 4008;

/** Bun's server.publish: one native call writes the frame to every socket on the topic. */
export type TopicPublisher = (topic: string, data: string) => void;

const topicOf = (channelId: string) => `channel:${channelId}`;

/** Bun's own backpressure limit sits this far above ours (src/app.ts): the room a look may be late by. */
export const BUN_LIMIT_MARGIN_BYTES = 16 * 1024 * 1024;

interface Subscribers {
  sockets: Set<LiveSocket>;
  /** Bytes (at most) published to the channel since the subscribers' buffers were last read. */
  unchecked: number;
}

/**
 * The channel subscriptions. A frame goes out through Bun's native topic publish (encoded once,
 * written by uWS). uWS skips a frame for a subscriber over *its* limit and may go on sending
 * later ones, a silent gap; so a subscriber over WS_BACKPRESSURE_LIMIT_BYTES is taken off the
 * topic and closed with CLOSE_SLOW_CONSUMER first. Reading every subscriber's buffer before
 * every frame would cost a pass over all of them per frame; a buffer can only have grown by what
 * was published since the last look, so the look comes once a quarter of the limit (at most
 * half of Bun's margin) has gone out, and at the first frame after a subscriber joined. A
 * subscriber still on the topic is then always under limit + a quarter, far below Bun's limit:
 * no frame is ever skipped, and a closed one resumes from the last seq it got.
 */
export class ChannelFanout {
  private readonly channels = new Map<string, Subscribers>();
  private publisher: TopicPublisher | null = null;
  private readonly lookEveryBytes: number;

  constructor(
    private readonly limitBytes: number,
    private readonly metrics?: Metrics,
  ) {
    this.lookEveryBytes = Math.max(1, Math.min(Math.floor(limitBytes / 4), BUN_LIMIT_MARGIN_BYTES / 2));
  }

  private follower: { follow(channelId: string): void; unfollow(channelId: string): void } | null = null;

  /** Cluster mode: told when a channel gets its first subscriber here and loses its last, to relay its frames. */
  followWith(follower: { follow(channelId: string): void; unfollow(channelId: string): void }) {
    this.follower = follower;
  }

  /** The listening server's publish; until it is set there is no socket to publish to. */
  attach(publisher: TopicPublisher) {
    this.publisher = publisher;
  }

  subscribe(channelId: string, socket: LiveSocket) {
    let subscribers = this.channels.get(channelId);
    if (!subscribers) {
      this.channels.set(channelId, (subscribers = { sockets: new Set(), unchecked: 0 }));
      this.follower?.follow(channelId);
    }
    subscribers.sockets.add(socket);
    // It may bring a replay's unread frames: its buffer is read before the next frame.
    subscribers.unchecked = Infinity;
    socket.subscribe(topicOf(channelId));
  }

  unsubscribe(channelId: string, socket: LiveSocket) {
    const subscribers = this.channels.get(channelId);
    if (!subscribers?.sockets.delete(socket)) return;
    if (subscribers.sockets.size === 0) {
      this.channels.delete(channelId);
      this.follower?.unfollow(channelId);
    }
    if (socket.readyState === 1) socket.unsubscribe(topicOf(channelId));
  }

  hasSubscribers(channelId: string): boolean {
    return this.channels.has(channelId);
  }

  /** On shutdown: every subscriber is told the server is going away (1001) and may reconnect. */
  closeAll(code: number, reason: string) {
    for (const { sockets } of this.channels.values()) {
      for (const socket of sockets) if (socket.readyState === 1) socket.close(code, reason);
    }
    this.channels.clear();
  }

  publish(channelId: string, data: string) {
    const subscribers = this.channels.get(channelId);
    if (!subscribers) return;
    // A UTF-16 unit is at most 3 UTF-8 bytes: counted so, the look comes early, never late.
    subscribers.unchecked += data.length * 3;
    if (subscribers.unchecked >= this.lookEveryBytes) {
      subscribers.unchecked = 0;
      this.cutSlowConsumers(channelId, subscribers.sockets);
    }
    if (subscribers.sockets.size === 0 || !this.publisher) return;
    this.publisher(topicOf(channelId), data);
    this.metrics?.framesSent(subscribers.sockets.size);
  }

  private cutSlowConsumers(channelId: string, sockets: Set<LiveSocket>) {
    for (const socket of sockets) {
      if (socket.readyState !== 1) {
        this.unsubscribe(channelId, socket);
      } else if (socket.getBufferedAmount() > this.limitBytes) {
        // Off the topic first: it gets nothing after what is already queued.
        this.unsubscribe(channelId, socket);
        socket.close(CLOSE_SLOW_CONSUMER, "slow consumer: resume with since_seq");
        this.metrics?.slowConsumerClosed();
      }
    }
  }
}
