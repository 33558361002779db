import type { ChannelContext } from "../../channel/context.ts";
import type { EphemeralHandler } from "../../channel/handlers.ts";
import type { EphemeralEvent } from "../../matrix/port.ts";
import { fromMatrixUserId, isServiceUser } from "../../domain/ids.ts";
import { findMessageByEvent } from "../../store/messages.ts";
import type { MessageRow } from "../../store/rows.ts";
import { Subjects } from "../../events/model.ts";
import { advanceReadState, findReadState, unreadCounts, type ReadStateRow } from "../../store/read-state.ts";
import type { ReadStateView } from "./model.ts";

/**
 * Marks everything up to `message` read for `memberId`: Matrix first (m.fully_read and the
 * public m.read receipt, as that member), then the index. A position at or behind the current
 * one changes nothing and asks nothing of Matrix.
 */
export async function markRead(ctx: ChannelContext, memberId: string, message: MessageRow): Promise<ReadStateView> {
  const { sql, matrix } = ctx.deps;
  const current = await findReadState(sql, ctx.channelId, memberId);
  if (current && Number(current.last_read_seq) >= Number(message.seq)) return readStateView(ctx, current);
  await ctx.matrixCall(() => matrix.setReadMarker(ctx.room, ctx.matrixId(memberId), message.matrix_event_id!));
  const advanced = await advanceReadState(sql, {
    channel_id: ctx.channelId,
    member_id: memberId,
    seq: Number(message.seq),
    event_id: message.matrix_event_id,
  });
  if (advanced) announceRead(ctx, advanced, message.id);
  return readStateView(ctx, advanced ?? (await findReadState(sql, ctx.channelId, memberId))!);
}

/**
 * m.receipt: `{<event id>: {"m.read": {<user>: {ts, thread_id?}}}}`. Public read receipts on
 * messages we index move that member's position forward; receipts inside a thread
 * (thread_id other than "main") and on events we do not index are ignored, and so is the
 * echo of our own receipts (the position is already there).
 */
async function ingestReceipt(ctx: ChannelContext, event: EphemeralEvent): Promise<void> {
  const { sql, matrix } = ctx.deps;
  for (const [eventId, receipts] of Object.entries(event.content)) {
    const readers = (receipts as Record<string, unknown> | null)?.["m.read"];
    if (!readers || typeof readers !== "object") continue;
    const message = await findMessageByEvent(sql, eventId);
    if (!message || message.channel_id !== ctx.channelId) continue;
    for (const [userId, receipt] of Object.entries(readers as Record<string, { thread_id?: unknown }>)) {
      if (isServiceUser(userId, matrix.serverName)) continue;
      const thread = receipt?.thread_id;
      if (typeof thread === "string" && thread !== "main") continue;
      const advanced = await advanceReadState(sql, {
        channel_id: ctx.channelId,
        member_id: fromMatrixUserId(userId, matrix.serverName).id,
        seq: Number(message.seq),
        event_id: eventId,
      });
      if (advanced) announceRead(ctx, advanced, message.id);
    }
  }
}

function announceRead(ctx: ChannelContext, row: ReadStateRow, messageId: string) {
  const updatedAt = row.updated_at.toISOString();
  const position = { member_id: row.member_id, last_read_seq: Number(row.last_read_seq), last_read_message_id: messageId, last_read_event_id: row.last_read_event_id };
  void ctx.announce({ type: "read", ...position, updated_at: updatedAt }, Subjects.messageRead, {
    event_id: `message.read:${row.channel_id}:${row.member_id}:${row.last_read_seq}`,
    channel_id: row.channel_id,
    ...position,
    read_at: updatedAt,
  });
}

export async function readStateView(ctx: Pick<ChannelContext, "deps" | "channelId">, row: ReadStateRow): Promise<ReadStateView> {
  const { sql } = ctx.deps;
  const message = row.last_read_event_id ? await findMessageByEvent(sql, row.last_read_event_id) : null;
  const unread = await unreadCounts(sql, row.member_id, [ctx.channelId]);
  return {
    channel_id: row.channel_id,
    member_id: row.member_id,
    last_read_seq: Number(row.last_read_seq),
    last_read_message_id: message?.id ?? null,
    last_read_event_id: row.last_read_event_id,
    unread_count: unread.get(ctx.channelId) ?? 0,
    updated_at: row.updated_at.toISOString(),
  };
}

export const receiptHandler: EphemeralHandler = { kinds: ["m.receipt"], handle: ingestReceipt };
