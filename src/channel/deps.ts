import type { Logger } from "../log.ts";
import type { Sql } from "../store/db.ts";
import type { EventBus } from "../events/bus.ts";
import type { MatrixBackend } from "../matrix/port.ts";
import type { ServerFrame } from "../wire/frames.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { ReadRule } from "../domain/read-rule.ts";
import type { KnownEchoes } from "./known-echoes.ts";

/** Ends open sockets of members who lost the read right; the realtime layer provides it. */
export interface SocketRevoker {
  revoke(channelId: string, memberId: string, reason: string): unknown;
  /** Ends the sockets whose caller the rule no longer lets read the channel. */
  revokeUnless(channelId: string, rule: ReadRule, reason: string): unknown;
}

/** The ports every channel works through; assembled once in the composition root. */
export interface ChannelPorts {
  sql: Sql;
  matrix: MatrixBackend;
  events: EventBus;
  broadcast: (channelId: string, frame: ServerFrame) => void;
  log: Logger;
  mailboxSize: number;
  idleMs: number;
  /** Open channel sockets by member, ended when the member loses the read right. */
  sockets?: SocketRevoker;
  /** Cluster mode: claims the channel's fence for this instance and returns the epoch (before the actor reads anything). */
  claim?: (channelId: string) => Promise<number>;
  /** Cluster mode: false once this instance may no longer act for the channel (checked before Matrix calls). */
  stillOwner?: (channelId: string) => boolean;
  /** A single instance: the echoes of sends written with their events in one statement, which the sync poller drops. */
  knownEchoes?: KnownEchoes;
  /** LINK_PREVIEWS=on: messages with a link want a preview (README "Link previews"); off or left out, none do. */
  linkPreviews?: boolean;
  /** Batch sizes, retries and sync lag; left out where nothing scrapes them (unit tests). */
  metrics?: Metrics;
}
