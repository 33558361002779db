import type { NatsConnection } from "nats";
import type { ServerFrame } from "../wire/frames.ts";
import type { SocketRevoker } from "../channel/deps.ts";
import type { ReadRule } from "../domain/read-rule.ts";

/** The subject a channel's frames travel on between the instances of one cluster. */
export const frameSubject = (cluster: string, channelId: string) => `daarion.${cluster}.frames.${channelId}`;

/**
 * A frame between instances: the owner's fence epoch and its count of frames in that epoch
 * (gaps and stale owners are seen by these), the frame's kind and seq, and the frame itself as
 * its WebSocket text. Control frames (a socket revocation) travel in the same order.
 */
export interface RelayedFrame {
  e: number;
  n: number;
  k: string;
  s: number;
  d?: string;
  revoke?: { memberId: string; reason: string };
  recheck?: { rule: ReadRule; reason: string };
}

/**
 * The owner's side: every frame of a channel's actor is published once on the channel's
 * subject, numbered within the actor's epoch. The relays on every instance (this one too) hand
 * them to their sockets.
 */
export class FramePublisher implements SocketRevoker {
  private readonly epochs = new Map<string, { epoch: number; n: number }>();
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly nc: NatsConnection,
    private readonly cluster: string,
  ) {}

  /** An actor claimed the channel with this epoch: its frames are numbered from 1. */
  begin(channelId: string, epoch: number): void {
    this.epochs.set(channelId, { epoch, n: 0 });
  }

  forget(channelId: string): void {
    this.epochs.delete(channelId);
  }

  publish(channelId: string, frame: ServerFrame): void {
    this.send(channelId, { k: frame.type, s: Number((frame as { seq?: number }).seq ?? 0), d: JSON.stringify(frame) });
  }

  revoke(channelId: string, memberId: string, reason: string): void {
    this.send(channelId, { k: "revoke", s: 0, revoke: { memberId, reason } });
  }

  revokeUnless(channelId: string, rule: ReadRule, reason: string): void {
    this.send(channelId, { k: "recheck", s: 0, recheck: { rule, reason } });
  }

  private send(channelId: string, frame: Omit<RelayedFrame, "e" | "n">): void {
    const state = this.epochs.get(channelId);
    // Only an actor that claimed the channel publishes; a frame from elsewhere (a timer after it stopped) is dropped.
    if (!state || this.nc.isClosed()) return;
    state.n++;
    this.nc.publish(frameSubject(this.cluster, channelId), this.encoder.encode(JSON.stringify({ ...frame, e: state.epoch, n: state.n })));
  }
}
