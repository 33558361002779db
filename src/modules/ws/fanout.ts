/** What the fan-out needs of a socket: Bun's ServerWebSocket. */
export interface LiveSocket {
  send(data: string): number;
  close(code?: number, reason?: string): void;
  getBufferedAmount(): number;
  readonly readyState: number;
}

/** Close code for a subscriber that let more than WS_BACKPRESSURE_LIMIT_BYTES pile up. */
export const CLOSE_SLOW_CONSUMER = 4008;

/**
 * The channel subscriptions, sent to one socket at a time instead of Bun's publish: Bun (uWS)
 * skips a frame for a subscriber over its backpressure limit and may go on sending later ones,
 * which would leave a gap. Here a subscriber that goes over the limit gets nothing after the
 * frame that took it there, only a close with CLOSE_SLOW_CONSUMER after what is already
 * queued, and resumes from the last seq it got.
 */
export class ChannelFanout {
  private readonly channels = new Map<string, Set<LiveSocket>>();

  constructor(private readonly limitBytes: number) {}

  subscribe(channelId: string, socket: LiveSocket) {
    let sockets = this.channels.get(channelId);
    if (!sockets) this.channels.set(channelId, (sockets = new Set()));
    sockets.add(socket);
  }

  unsubscribe(channelId: string, socket: LiveSocket) {
    const sockets = this.channels.get(channelId);
    if (!sockets?.delete(socket)) return;
    if (sockets.size === 0) this.channels.delete(channelId);
  }

  /** On shutdown: every subscriber is told the server is going away (1001) and may reconnect. */
  closeAll(code: number, reason: string) {
    for (const sockets of this.channels.values()) {
      for (const socket of sockets) if (socket.readyState === 1) socket.close(code, reason);
    }
    this.channels.clear();
  }

  /**
   * One native call per subscriber while it keeps up: Bun's send answers the bytes written, -1
   * when the frame was queued behind unsent data, 0 when it was not taken (a closed socket).
   * Only a queued frame needs a look at how much is waiting.
   */
  publish(channelId: string, data: string) {
    for (const socket of this.channels.get(channelId) ?? []) {
      const sent = socket.send(data);
      if (sent > 0) continue;
      if (sent === 0) {
        // Gone, or (past Bun's own cap, set above ours) a dropped frame: either way no more frames.
        this.unsubscribe(channelId, socket);
        if (socket.readyState === 1) socket.close(CLOSE_SLOW_CONSUMER, "slow consumer: resume with since_seq");
      } else if (socket.getBufferedAmount() > this.limitBytes) {
        // This frame is queued and goes out before the close; nothing after it does.
        this.unsubscribe(channelId, socket);
        socket.close(CLOSE_SLOW_CONSUMER, "slow consumer: resume with since_seq");
      }
    }
  }
}
