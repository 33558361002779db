/** Row shapes as postgres.js returns them. */
import type { Visibility } from "../domain/rights.ts";
import type { SenderType } from "../domain/ids.ts";
import type { MemberRights, Role } from "../domain/member-rights.ts";
import type { LinkPreview } from "../wire/link-preview.ts";

export type DeliveryState = "pending" | "sent" | "failed";
export type { Role };

export interface ChannelRow {
  id: string;
  slug: string;
  name: string;
  description: string | null;
  microdao_id: string;
  matrix_room_id: string;
  matrix_alias: string | null;
  visibility: Visibility;
  is_direct: boolean;
  is_encrypted: boolean;
  topic: string | null;
  avatar_url: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
}

export interface MessageRow {
  id: string;
  channel_id: string;
  seq: string; // bigint
  matrix_event_id: string | null;
  matrix_type: string;
  sender_id: string;
  sender_type: SenderType;
  sender_matrix_id: string;
  sender_display_name: string | null;
  content_preview: string;
  content_type: string;
  msgtype: string | null;
  thread_id: string | null;
  reply_to: string | null;
  delivery_state: DeliveryState;
  outbox_content: Record<string, unknown> | null;
  failure_reason: string | null;
  edited_at: Date | null;
  deleted_at: Date | null;
  created_at: Date;
  media_url: string | null;
  media_mimetype: string | null;
  media_size: string | null; // bigint
  media_filename: string | null;
  /** A voice message's length and MSC3246 waveform (0..1024 each); null for other messages. */
  voice_duration_ms: number | null;
  voice_waveform: number[] | null;
  /** The member ids it mentions (message_mentions has a row for each). */
  mentions: string[];
  /** The link it wants previewed, its preview once there, and whether its sender said no previews (migration 023). */
  link_preview_url: string | null;
  link_preview: LinkPreview | null;
  link_previews_off: boolean;
}

export interface MemberRow extends MemberRights {
  id: string;
  channel_id: string;
  member_id: string;
  member_type: SenderType;
  matrix_user_id: string;
  matrix_power_level: number;
  invited_by: string | null;
  display_name: string | null;
  joined_at: Date;
  left_at: Date | null;
}

/** What the index keeps of a media message, so downloads need no Matrix event. */
export interface MediaColumns {
  media_url: string;
  media_mimetype: string | null;
  media_size: number | null;
  media_filename: string | null;
}

/** What the index keeps of a voice message (an m.audio with org.matrix.msc3245.voice). */
export interface VoiceColumns {
  voice_duration_ms: number | null;
  voice_waveform: number[] | null;
}
