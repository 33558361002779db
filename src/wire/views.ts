import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MemberRights } from "../domain/member-rights.ts";
import { ReactionSummary } from "./reaction-summary.ts";
import { LinkPreviewView } from "./link-preview.ts";

// The views every response, frame and channel announcement shows: one shape each (rows become
// views in store/views.ts).

export const Visibility = t.Union([t.Literal("public"), t.Literal("private"), t.Literal("microdao")]);

export const ChannelView = t.Object({
  id: t.String({ format: "uuid" }),
  slug: t.String(),
  name: t.String(),
  description: t.Nullable(t.String()),
  topic: t.Nullable(t.String()),
  microdao_id: t.String(),
  matrix_room_id: t.String({ examples: ["!abc:daarion.city"] }),
  matrix_alias: t.Nullable(t.String({ examples: ["#general-daarion:daarion.city"] })),
  visibility: Visibility,
  is_direct: t.Boolean(),
  is_encrypted: t.Boolean(),
  created_by: t.String(),
  created_at: t.String({ format: "date-time" }),
  updated_at: t.String({ format: "date-time" }),
  unread_count: t.Optional(
    t.Integer({ description: "In the listing: others' messages after the caller's read position (0 if not a member)" }),
  ),
  archived_at: t.Nullable(t.String({ format: "date-time" })),
});
export type ChannelView = Static<typeof ChannelView>;

export const MemberView = t.Object({
  id: t.String({ format: "uuid" }),
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  member_type: t.Union([t.Literal("human"), t.Literal("agent")]),
  matrix_user_id: t.String(),
  ...MemberRights.properties,
  matrix_power_level: t.Integer(),
  invited_by: t.Nullable(t.String()),
  display_name: t.Nullable(t.String()),
  joined_at: t.String({ format: "date-time" }),
});
export type MemberView = Static<typeof MemberView>;

export const MessageView = t.Object({
  id: t.String({ format: "uuid" }),
  channel_id: t.String({ format: "uuid" }),
  seq: t.Integer({ description: "Position in the channel: strictly increasing, gap-free." }),
  matrix_event_id: t.Nullable(t.String({ description: "Null while the send is pending." })),
  matrix_type: t.String(),
  sender_id: t.String({ examples: ["user:alice", "agent:sofia", "matrix:@bob:example.org"] }),
  sender_type: t.Union([t.Literal("human"), t.Literal("agent")]),
  sender_matrix_id: t.String(),
  sender_display_name: t.Nullable(t.String()),
  content_preview: t.String(),
  content_type: t.String(),
  msgtype: t.Nullable(t.String()),
  thread_id: t.Nullable(t.String({ format: "uuid", description: "The thread's root message, for a reply in a thread" })),
  reply_to: t.Nullable(t.String({ format: "uuid" })),
  reply_count: t.Integer({ description: "Replies in the thread this message roots" }),
  last_reply_at: t.Nullable(t.String({ format: "date-time" })),
  status: t.Union([t.Literal("pending"), t.Literal("sent"), t.Literal("failed")]),
  edited_at: t.Nullable(t.String({ format: "date-time" })),
  reactions: t.Array(ReactionSummary, { description: "Reactions by emoji, in the order they were first used" }),
  deleted_at: t.Nullable(t.String({ format: "date-time" })),
  created_at: t.String({ format: "date-time" }),
  mentions: t.Array(t.String({ examples: ["agent:sofia", "user:alice"] }), {
    description: "The members it mentions (m.mentions of the Matrix event), member ids; empty once deleted",
  }),
  media: t.Nullable(
    t.Object(
      {
        url: t.String({ description: "The mxc:// URI in Matrix" }),
        mimetype: t.Nullable(t.String()),
        size: t.Nullable(t.Integer()),
        filename: t.Nullable(t.String()),
        download_path: t.String({ description: "Where the service streams the file (read right on the channel needed)" }),
      },
      { description: "For file, image, audio and video messages" },
    ),
  ),
  voice: t.Nullable(
    t.Object(
      {
        duration_ms: t.Nullable(t.Integer({ minimum: 0, description: "The recording's length in milliseconds" })),
        waveform: t.Array(t.Integer({ minimum: 0, maximum: 1024 }), {
          description: "Amplitudes over the recording (MSC3246: integers 0..1024; the service's uploads have 100); empty when the sender gave none",
        }),
      },
      { description: "For voice messages (content_type voice: an m.audio with org.matrix.msc3245.voice); its file is in media" },
    ),
  ),
  link_preview: t.Nullable(LinkPreviewView, {
    description:
      "The preview of the message's first link, once fetched (a message.updated frame announces it); null without a link, before it is there, when the page had nothing to show, for a sender who opted out, and always in a confidential channel",
  }),
});
export type MessageView = Static<typeof MessageView>;

export const PinView = t.Object({
  message_id: t.String({ format: "uuid" }),
  matrix_event_id: t.String(),
  pinned_by: t.String(),
  pinned_at: t.String({ format: "date-time" }),
  message: MessageView,
});
export type PinView = Static<typeof PinView>;

