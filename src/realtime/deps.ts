import type { ServiceDeps } from "../features/deps.ts";
import type { SocketRegistry } from "./sockets.ts";
import type { Metrics } from "../metrics/metrics.ts";

/** What the WebSocket endpoint is built from: the services' deps, with the open sockets it adds and removes. */
export interface RealtimeDeps extends ServiceDeps {
  sockets: SocketRegistry;
  metrics?: Metrics;
}
