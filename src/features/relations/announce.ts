import type { ChannelContext } from "../../channel/context.ts";
import { Subjects } from "../../events/model.ts";
import type { MessageRow } from "../../store/rows.ts";
import { extrasOf } from "../../store/message-extras.ts";
import { toMessageView } from "../messages/view.ts";
import { reactionCount, type ReactionRow } from "../../store/reactions.ts";

/** WebSocket frame and NATS event for a reaction that was added or removed. */
export async function announceReaction(ctx: ChannelContext, kind: "added" | "removed", reaction: ReactionRow): Promise<number> {
  const count = await reactionCount(ctx.deps.sql, reaction.message_id, reaction.emoji);
  const frame = {
    type: kind === "added" ? ("reaction.added" as const) : ("reaction.removed" as const),
    message_id: reaction.message_id,
    emoji: reaction.emoji,
    reactor_id: reaction.reactor_id,
    count,
  };
  const fields = {
    channel_id: ctx.channelId,
    message_id: reaction.message_id,
    matrix_event_id: reaction.matrix_event_id,
    reactor_id: reaction.reactor_id,
    reactor_type: reaction.reactor_type,
    emoji: reaction.emoji,
  };
  if (kind === "added") {
    void ctx.announce(frame, Subjects.reactionAdded, { event_id: `reaction.added:${reaction.matrix_event_id}`, ...fields, created_at: reaction.created_at.toISOString() });
  } else {
    void ctx.announce(frame, Subjects.reactionRemoved, {
      event_id: `reaction.removed:${reaction.matrix_event_id}`,
      ...fields,
      removed_at: (reaction.removed_at ?? new Date()).toISOString(),
    });
  }
  return count;
}

/** The message as listings show it; a broadcast has no single caller, so `me` is false. */
export async function messageViewOf(ctx: ChannelContext, row: MessageRow) {
  const { threads, reactions } = await extrasOf(ctx.deps.sql, [row.id], null);
  return toMessageView(row, threads.get(row.id), reactions.get(row.id) ?? []);
}

export async function announceEdit(ctx: ChannelContext, row: MessageRow, edit: { matrixEventId: string; editorId: string; version: number }) {
  const view = await messageViewOf(ctx, row);
  void ctx.announce({ type: "message.updated", seq: view.seq, message: view }, Subjects.messageUpdated, {
    event_id: `message.updated:${edit.matrixEventId}`,
    channel_id: ctx.channelId,
    message_id: row.id,
    seq: view.seq,
    matrix_event_id: edit.matrixEventId,
    editor_id: edit.editorId,
    version: edit.version,
    preview: row.content_preview,
    edited_at: view.edited_at!,
    change: "edit",
    link_preview: view.link_preview,
  });
  return view;
}

export function announceDeletion(ctx: ChannelContext, row: MessageRow, deletion: { redactionEventId: string; deletedBy: string }) {
  const seq = Number(row.seq);
  const deletedAt = (row.deleted_at ?? new Date()).toISOString();
  void ctx.announce({ type: "message.deleted", seq, message_id: row.id, deleted_by: deletion.deletedBy, deleted_at: deletedAt }, Subjects.messageDeleted, {
    event_id: `message.deleted:${row.id}`,
    channel_id: ctx.channelId,
    message_id: row.id,
    seq,
    matrix_event_id: deletion.redactionEventId,
    deleted_by: deletion.deletedBy,
    deleted_at: deletedAt,
  });
}
