import type { ServiceDeps } from "../deps.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { AppError } from "../../errors.ts";
import { toMatrixUserId } from "../../domain/ids.ts";
import { orMatrixUnavailable } from "../../matrix/unavailable.ts";
import type { CallView, TurnServerView } from "./model.ts";
import { readCallView } from "./view.ts";

/** Calls are read from Matrix, never written: the service indexes call state and hands out TURN credentials. */
export class CallService {
  /** Channels whose expiry timer this process has set (or asked for). */
  private readonly armed = new Set<string>();

  constructor(private readonly deps: ServiceDeps) {}

  /**
   * Whoever may read the channel's messages may see its call. The first read of a channel with
   * something that can expire sets its expiry timer in this process, which a restart lost (not
   * awaited: the answer does not wait for the channel's loop).
   */
  async channelCall(callerId: string, channelId: string): Promise<CallView> {
    const { channel } = await readableChannel(this.deps.sql, callerId, channelId);
    const view = await readCallView(this.deps.sql, channel, new Date());
    if (view.active && !this.armed.has(channelId) && !channel.archived_at) {
      this.armed.add(channelId);
      void this.deps.registry.run(channelId, "calls.arm", {}).catch(() => this.armed.delete(channelId));
    }
    return view;
  }

  /** The homeserver's TURN credentials for the caller's Matrix user (the application service acts as them). */
  async turnServer(callerId: string): Promise<TurnServerView> {
    const asUser = toMatrixUserId(callerId, this.deps.matrix.serverName);
    const turn = await orMatrixUnavailable(() => this.deps.matrix.turnServer(asUser), "did not hand out TURN credentials");
    if (!turn) throw new AppError(503, "TURN_UNAVAILABLE", "no TURN server is configured on the homeserver", { "Retry-After": "300" });
    return turn;
  }
}
