import type { Logger } from "../log.ts";
import type { Sql } from "../store/db.ts";
import type { EventBus } from "../events/bus.ts";
import type { MatrixBackend } from "../matrix/port.ts";
import type { ServerFrame } from "../wire/frames.ts";
import type { Metrics } from "../metrics/metrics.ts";

/** Ends open sockets of members who lost the read right; the realtime layer provides it. */
export interface SocketRevoker {
  revoke(channelId: string, memberId: string, reason: string): unknown;
  revokeUnless(channelId: string, mayRead: (memberId: string, microdaos: readonly string[]) => boolean, reason: string): unknown;
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
  /** Batch sizes, retries and sync lag; left out where nothing scrapes them (unit tests). */
  metrics?: Metrics;
}
