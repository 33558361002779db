import type { ChannelContext } from "../../channel/context.ts";
import { findMessage } from "../../store/messages.ts";
import { notFound } from "../../errors.ts";
import { applyLocalTyping } from "./typing.ts";
import { markRead } from "./receipts.ts";
import type { ReadStateView } from "./model.ts";

/** The caller starts or stops typing: in Matrix as their mapped user, and on the channel's socket. Returns who types now. */
async function setTyping(ctx: ChannelContext, cmd: { callerId: string; typing: boolean; timeoutMs: number }): Promise<string[]> {
  await ctx.matrixCall(() => ctx.deps.matrix.setTyping(ctx.room, ctx.matrixId(cmd.callerId), cmd.typing, cmd.timeoutMs));
  return applyLocalTyping(ctx, cmd.callerId, cmd.typing, cmd.timeoutMs);
}

/** Marks everything up to the message read for the caller. */
async function markChannelRead(ctx: ChannelContext, cmd: { callerId: string; messageId: string }): Promise<ReadStateView> {
  const message = await findMessage(ctx.deps.sql, ctx.channelId, cmd.messageId);
  if (!message) throw notFound("message");
  return markRead(ctx, cmd.callerId, message);
}

export const presenceCommands = { "presence.typing": setTyping, "presence.read": markChannelRead };

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends PresenceCommands {}
}
type PresenceCommands = typeof presenceCommands;
