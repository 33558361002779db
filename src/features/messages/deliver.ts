import type { ChannelRegistry, SendOutcome } from "../../channel/registry.ts";
import type { SendCommand } from "../../channel/outbox.ts";

export type { SendOutcome };

/**
 * Sends through the channel's outbox (on its owner) and waits up to `confirmWithinMs` for
 * Matrix's confirmation; see ChannelRegistry.send.
 */
export function sendAndConfirm(registry: ChannelRegistry, channelId: string, cmd: SendCommand, confirmWithinMs: number): Promise<SendOutcome> {
  return registry.send(channelId, cmd, confirmWithinMs);
}
