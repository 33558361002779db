import type { ChannelRegistry } from "../../channel/registry.ts";
import type { SendCommand } from "../../channel/outbox.ts";
import type { MessageRow } from "../../store/rows.ts";

export interface SendOutcome {
  row: MessageRow;
  /** True when Matrix confirmed within the wait (201); false when it is still pending (202). */
  confirmed: boolean;
}

/**
 * Sends through the channel's outbox and waits up to `confirmWithinMs` for Matrix's
 * confirmation. The message is durable once accepted; if the wait runs out it is answered as
 * pending, and a message.updated (or message.failed) follows on the channel's WebSocket.
 */
export async function sendAndConfirm(
  registry: ChannelRegistry,
  channelId: string,
  cmd: SendCommand,
  confirmWithinMs: number,
): Promise<SendOutcome> {
  const started = Date.now();
  const { accepted, delivered } = registry.get(channelId).submit(cmd);
  const pending = await accepted;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), Math.max(0, confirmWithinMs - (Date.now() - started)));
  });
  try {
    const sent = await Promise.race([delivered, timedOut]);
    return sent ? { row: sent, confirmed: true } : { row: pending, confirmed: false };
  } finally {
    clearTimeout(timer);
  }
}
