import type { MessageRow } from "../../store/rows.ts";
import type { ThreadStats } from "../../store/messages.ts";
import type { MessageView } from "./model.ts";
import type { ReactionSummary } from "../../wire/reaction-summary.ts";

export function toMessageView(row: MessageRow, thread?: ThreadStats, reactions: ReactionSummary[] = []): MessageView {
  return {
    id: row.id,
    channel_id: row.channel_id,
    seq: Number(row.seq),
    matrix_event_id: row.matrix_event_id,
    matrix_type: row.matrix_type,
    sender_id: row.sender_id,
    sender_type: row.sender_type,
    sender_matrix_id: row.sender_matrix_id,
    sender_display_name: row.sender_display_name,
    content_preview: row.content_preview,
    content_type: row.content_type,
    msgtype: row.msgtype,
    thread_id: row.thread_id,
    reply_to: row.reply_to,
    reply_count: thread?.reply_count ?? 0,
    last_reply_at: thread?.last_reply_at?.toISOString() ?? null,
    status: row.delivery_state,
    edited_at: row.edited_at?.toISOString() ?? null,
    reactions,
    deleted_at: row.deleted_at?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    media: row.media_url
      ? {
          url: row.media_url,
          mimetype: row.media_mimetype,
          size: row.media_size === null ? null : Number(row.media_size),
          filename: row.media_filename,
          download_path: `/api/messaging/channels/${row.channel_id}/messages/${row.id}/file`,
        }
      : null,
  };
}
