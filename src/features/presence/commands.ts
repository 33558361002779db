import type { ServiceDeps } from "../deps.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { AppError, forbidden, notFound } from "../../errors.ts";
import { findMessage } from "../../store/messages.ts";
import { applyLocalTyping } from "./typing.ts";
import { markRead } from "./receipts.ts";
import { DEFAULT_TYPING_TIMEOUT_MS, type ReadStateView } from "./model.ts";

/** The caller starts or stops typing: in Matrix as their mapped user, and on the channel's socket. Returns who types now. */
export async function setTyping(
  deps: ServiceDeps,
  callerId: string,
  channelId: string,
  typing: boolean,
  timeoutMs = DEFAULT_TYPING_TIMEOUT_MS,
): Promise<string[]> {
  const access = await readableChannel(deps.sql, callerId, channelId);
  if (!access.member?.can_write) throw forbidden("only members who may write can type in this channel");
  return deps.registry.get(channelId).exec(async (ctx) => {
    await ctx.matrixCall(() => ctx.deps.matrix.setTyping(ctx.room, ctx.matrixId(callerId), typing, timeoutMs));
    return applyLocalTyping(ctx, callerId, typing, timeoutMs);
  });
}

/** Marks everything up to `messageId` read for the caller. */
export async function markChannelRead(deps: ServiceDeps, callerId: string, channelId: string, messageId: string): Promise<ReadStateView> {
  const access = await readableChannel(deps.sql, callerId, channelId);
  if (!access.member) throw forbidden("only members of this channel keep a read position");
  const message = await findMessage(deps.sql, channelId, messageId);
  if (!message) throw notFound("message");
  if (!message.matrix_event_id) throw new AppError(409, "MESSAGE_NOT_DELIVERED", "the message is not in Matrix yet; mark an earlier one read");
  return deps.registry.get(channelId).exec((ctx) => markRead(ctx, callerId, message));
}
