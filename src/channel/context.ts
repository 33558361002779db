import type { Logger } from "../log.ts";
import type { ChannelRow } from "../store/rows.ts";
import type { EventPayloads, Subject } from "../events/model.ts";
import type { ServerFrame } from "../wire/frames.ts";
import type { ChannelPorts } from "./deps.ts";

/**
 * What a feature's command or event handler sees while it runs inside a channel's loop. It
 * runs one at a time with every other job of that channel, so it may read and change the
 * channel's state without locks; it must not keep the context after it returns.
 */
export interface ChannelContext {
  readonly channelId: string;
  readonly channel: ChannelRow;
  /** The channel's Matrix room id. */
  readonly room: string;
  readonly deps: ChannelPorts;
  readonly log: Logger;
  /** The latest message seq of the channel. */
  readonly seq: number;
  /** `user:alice` -> `@user-alice:server`. */
  matrixId(daarionId: string): string;
  /** Replaces the channel's copy of its row after a feature changed it. */
  setChannel(row: ChannelRow): void;
  /** A public channel's first write (a reaction, say) joins the user, in Matrix and the index. */
  joinPublic(memberId: string): Promise<void>;
  /** Runs homeserver calls; a failure becomes a clear 502 for the caller. */
  matrixCall<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Tells subscribers: the WebSocket frame (stamped with the channel's seq unless it carries
   * its own) and, when given, the NATS event, together. Resolves once the event is published.
   */
  announce<S extends Subject>(frame: ServerFrame, subject?: S, payload?: EventPayloads[S]): Promise<void>;
}
