import type { ServiceDeps } from "../features/deps.ts";
import type { SocketRegistry } from "./sockets.ts";
import type { Metrics } from "../metrics/metrics.ts";

/**
 * Runs a replay's last stretch at a point of the channel's frame order, so that the live frames
 * start exactly after it: in the channel's actor on a single instance, in the channel's frame
 * relay in a cluster (src/cluster/relay.ts). `seq` is the last message seq delivered live.
 */
export interface ChannelObserver {
  /** `reached`: the last seq the caller already has; the point given to `fn` is at least there. */
  observe<T>(channelId: string, fn: (point: { seq: number }) => Promise<T>, reached?: number): Promise<T>;
}

/** What the WebSocket endpoint is built from: the services' deps, with the open sockets it adds and removes. */
export interface RealtimeDeps extends ServiceDeps {
  sockets: SocketRegistry;
  metrics?: Metrics;
  /** Unset: the channel's actor on this instance. */
  observer?: ChannelObserver;
}
