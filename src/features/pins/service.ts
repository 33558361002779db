import type { ServiceDeps } from "../deps.ts";
import { forbidden } from "../../errors.ts";
import { readableChannel, type ChannelAccess } from "../../access/channel-access.ts";
import { writeRight } from "../../domain/rights.ts";
import { listPins } from "../../store/pins.ts";

/** Current members with can_write may pin and unpin; whoever may read the channel sees the pins. */
export class PinService {
  constructor(private readonly deps: ServiceDeps) {}

  list(callerId: string, channelId: string) {
    return readableChannel(this.deps.sql, callerId, channelId).then(() => listPins(this.deps.sql, channelId));
  }

  async pin(callerId: string, channelId: string, messageId: string) {
    requirePinRight(await readableChannel(this.deps.sql, callerId, channelId), callerId);
    return this.deps.registry.run(channelId, "pins.pin", { callerId, messageId });
  }

  async unpin(callerId: string, channelId: string, messageId: string) {
    requirePinRight(await readableChannel(this.deps.sql, callerId, channelId), callerId);
    await this.deps.registry.run(channelId, "pins.unpin", { callerId, messageId });
  }
}

function requirePinRight(access: ChannelAccess, callerId: string) {
  // A public channel's first write joins the writer; pinning does not: it needs membership.
  if (writeRight(access, callerId).joinFirst) throw forbidden("only members may pin messages");
}
