import type { EphemeralEvent, MatrixEvent } from "../matrix/port.ts";
import type { SendCommand } from "./outbox.ts";
import { AppError } from "../errors.ts";

/**
 * What can be asked of a channel's actor, as plain values: on one instance it runs here; in a
 * cluster it is sent to the instance that owns the channel (src/cluster/forward.ts).
 */
export type ChannelOp =
  | { kind: "run"; name: string; args: unknown }
  | { kind: "send"; cmd: SendCommand; confirmWithinMs: number }
  | { kind: "ingest"; events: MatrixEvent[]; /** Event ids the index did not hold when the inbox was read. */ unindexed?: string[] }
  | { kind: "ephemeral"; event: EphemeralEvent };

/** Takes a channel op to wherever the channel's actor runs; `local` runs it here. */
export interface ChannelRouter {
  dispatch(channelId: string, op: ChannelOp): Promise<unknown>;
}

/** This instance does not (or no longer) own the channel: the op did not run, and may be sent to the owner. */
export class NotOwnerError extends AppError {
  constructor(channelId: string) {
    super(503, "CHANNEL_MOVING", `channel ${channelId} is owned by another instance; try again`, { "Retry-After": "1" });
    this.name = "NotOwnerError";
  }
}
