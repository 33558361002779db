import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { ChannelIdParams } from "../channels/model.ts";
import { ReactionSummary } from "../../wire/reaction-summary.ts";

export const MSGTYPES = ["m.text", "m.notice", "m.image", "m.file", "m.audio", "m.video"] as const;
export const Msgtype = t.Union(MSGTYPES.map((m) => t.Literal(m)), { default: "m.text" });

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
});
export type MessageView = Static<typeof MessageView>;

export const MessageDetail = t.Composite([
  MessageView,
  t.Object({ content: t.Record(t.String(), t.Unknown(), { description: "The full Matrix event content." }) }),
]);

export const SendMessageBody = t.Object(
  {
    text: t.String({ minLength: 1, maxLength: 10000 }),
    msgtype: t.Optional(Msgtype),
    formatted_body: t.Optional(t.String({ minLength: 1, maxLength: 20000 })),
    reply_to: t.Optional(t.String({ format: "uuid" })),
    thread_id: t.Optional(t.String({ format: "uuid", description: "Post into the thread of this message (m.thread)" })),
  },
  { additionalProperties: false },
);
export type SendMessageBody = Static<typeof SendMessageBody>;

export const ListMessagesQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 200, default: 50 })),
  cursor: t.Optional(t.String({ pattern: "^[0-9]{1,18}$", description: "X-Next-Cursor from the previous page." })),
  before: t.Optional(t.String({ format: "date-time", description: "The seed's timestamp paging: messages created before this instant." })),
});

export const MessageParams = t.Object({
  id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
});

export { ChannelIdParams };
