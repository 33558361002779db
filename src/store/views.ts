import type { ChannelRow, MemberRow, MessageRow } from "./rows.ts";
import type { ThreadStats } from "./message-extras.ts";
import type { PinRow } from "./pins.ts";
import { rightsOf } from "../domain/member-rights.ts";
import type { ChannelView, MemberView, MessageView, PinView } from "../wire/views.ts";
import { VOICE_CONTENT_TYPE } from "../domain/voice.ts";
import type { ReactionSummary } from "../wire/reaction-summary.ts";
import type { LinkPreviewView } from "../wire/link-preview.ts";

// Rows as the service shows them: the one place an index row becomes its wire view.

export function toChannelView(row: ChannelRow): ChannelView {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    description: row.description,
    topic: row.topic,
    microdao_id: row.microdao_id,
    matrix_room_id: row.matrix_room_id,
    matrix_alias: row.matrix_alias,
    visibility: row.visibility,
    is_direct: row.is_direct,
    is_encrypted: row.is_encrypted,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    archived_at: row.archived_at?.toISOString() ?? null,
  };
}

export function toMemberView(row: MemberRow): MemberView {
  return {
    id: row.id,
    channel_id: row.channel_id,
    member_id: row.member_id,
    member_type: row.member_type,
    matrix_user_id: row.matrix_user_id,
    ...rightsOf(row),
    matrix_power_level: row.matrix_power_level,
    invited_by: row.invited_by,
    display_name: row.display_name,
    joined_at: row.joined_at.toISOString(),
  };
}

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
    mentions: row.mentions ?? [],
    media: row.media_url
      ? {
          url: row.media_url,
          mimetype: row.media_mimetype,
          size: row.media_size === null ? null : Number(row.media_size),
          filename: row.media_filename,
          download_path: `/api/messaging/channels/${row.channel_id}/messages/${row.id}/file`,
        }
      : null,
    voice: row.content_type === VOICE_CONTENT_TYPE && !row.deleted_at ? { duration_ms: row.voice_duration_ms, waveform: row.voice_waveform ?? [] } : null,
    link_preview: toLinkPreviewView(row),
  };
}

/** The preview as clients see it; its image is streamed by the service (GET …/link-preview/image), like a file. */
export function toLinkPreviewView(row: Pick<MessageRow, "id" | "channel_id" | "link_preview" | "deleted_at">): LinkPreviewView | null {
  const preview = row.link_preview;
  if (!preview || row.deleted_at) return null;
  return {
    url: preview.url,
    title: preview.title ?? null,
    description: preview.description ?? null,
    site_name: preview.site_name ?? null,
    image_url: preview.image_url ?? null,
    image_width: preview.image_width ?? null,
    image_height: preview.image_height ?? null,
    image_download_path: preview.image_url ? `/api/messaging/channels/${row.channel_id}/messages/${row.id}/link-preview/image` : null,
  };
}

export function toPinView(pin: PinRow, message: MessageRow): PinView {
  return {
    message_id: pin.message_id,
    matrix_event_id: pin.matrix_event_id,
    pinned_by: pin.pinned_by,
    pinned_at: pin.pinned_at.toISOString(),
    message: toMessageView(message),
  };
}
