import type { Sql } from "../store/db.ts";
import type { MatrixBackend } from "../matrix/port.ts";
import type { EventBus } from "../events/bus.ts";
import type { ChannelRegistry } from "../channel/registry.ts";
import type { Logger } from "../log.ts";
import type { Authenticator } from "../http/auth/authenticator.ts";
import type { SocketRevoker } from "../channel/deps.ts";

/** What the feature services are built from; assembled once in the composition root. */
export interface ServiceDeps {
  sql: Sql;
  matrix: MatrixBackend;
  events: EventBus;
  registry: ChannelRegistry;
  log: Logger;
  /** How long a send waits for Matrix's confirmation before it is answered as pending (202). */
  sendConfirmMs: number;
  /** Who the caller of a request or a WebSocket upgrade is. */
  auth: Authenticator;
  /** Open channel sockets by member, ended when the member loses the read right. */
  sockets: SocketRevoker;
}
