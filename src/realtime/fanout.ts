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

/**
 * The channel subscriptions. A frame goes out through Bun's native topic publish (encoded once,
 * written by uWS), but only after every subscriber over WS_BACKPRESSURE_LIMIT_BYTES has been
 * taken off the topic and closed with CLOSE_SLOW_CONSUMER: uWS skips a frame for a subscriber
 * over *its* limit and may go on sending later ones, a silent gap. Bun's limit is set 16 MB
 * above ours (src/app.ts), so a subscriber still on the topic is always under it: no frame is
 * ever skipped, and a closed one resumes from the last seq it got.
 */
export class ChannelFanout {
  private readonly channels = new Map<string, Set<LiveSocket>>();
  private publisher: TopicPublisher | null = null;

  constructor(
    private readonly limitBytes: number,
    private readonly metrics?: Metrics,
  ) {}

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
    let sockets = this.channels.get(channelId);
    if (!sockets) {
      this.channels.set(channelId, (sockets = new Set()));
      this.follower?.follow(channelId);
    }
    sockets.add(socket);
    socket.subscribe(topicOf(channelId));
  }

  unsubscribe(channelId: string, socket: LiveSocket) {
    const sockets = this.channels.get(channelId);
    if (!sockets?.delete(socket)) return;
    if (sockets.size === 0) {
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
    for (const sockets of this.channels.values()) {
      for (const socket of sockets) if (socket.readyState === 1) socket.close(code, reason);
    }
    this.channels.clear();
  }

  publish(channelId: string, data: string) {
    const sockets = this.channels.get(channelId);
    if (!sockets) return;
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
    if (sockets.size === 0 || !this.publisher) return;
    this.publisher(topicOf(channelId), data);
    this.metrics?.framesSent(sockets.size);
  }
}
