import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MessageView } from "../messages/model.ts";
import { ReactionSummary } from "../../wire/reaction-summary.ts";

export { ReactionSummary };

// A key is one emoji or a short label; Matrix itself does not limit it, Element sends grapheme clusters.
const Emoji = t.String({ minLength: 1, maxLength: 64, description: "The reaction key, usually one emoji" });

export const ReactionBody = t.Object({ emoji: Emoji }, { additionalProperties: false });
export const ReactionQuery = t.Object({ emoji: Emoji });

export const EditBody = t.Object(
  {
    text: t.String({ minLength: 1, maxLength: 10000 }),
    formatted_body: t.Optional(t.String({ minLength: 1, maxLength: 20000 })),
  },
  { additionalProperties: false },
);
export type EditBody = Static<typeof EditBody>;

/** What a reaction command answers: the message's reactions for that emoji after the change. */
export const ReactionResult = t.Object({
  message_id: t.String({ format: "uuid" }),
  emoji: t.String(),
  count: t.Integer({ minimum: 0 }),
  me: t.Boolean(),
});
export type ReactionResult = Static<typeof ReactionResult>;

export const EditVersion = t.Object({
  version: t.Integer({ minimum: 1, description: "1 is the original" }),
  editor_id: t.String(),
  content_preview: t.String(),
  formatted_body: t.Nullable(t.String()),
  matrix_event_id: t.Nullable(t.String()),
  created_at: t.String({ format: "date-time" }),
});
export type EditVersion = Static<typeof EditVersion>;

export const DeletedResult = t.Object({
  message_id: t.String({ format: "uuid" }),
  deleted_at: t.String({ format: "date-time" }),
});

// WebSocket frames (added to the ServerFrame union).
export const ReactionAddedFrame = t.Object({
  type: t.Literal("reaction.added"),
  message_id: t.String({ format: "uuid" }),
  emoji: t.String(),
  reactor_id: t.String(),
  count: t.Integer({ description: "Reactions with this emoji on the message, after the change" }),
});
export const ReactionRemovedFrame = t.Object({
  type: t.Literal("reaction.removed"),
  message_id: t.String({ format: "uuid" }),
  emoji: t.String(),
  reactor_id: t.String(),
  count: t.Integer(),
});
export const MessageUpdatedFrame = t.Object({
  type: t.Literal("message.updated"),
  seq: t.Integer(),
  message: MessageView,
});
export const MessageDeletedFrame = t.Object({
  type: t.Literal("message.deleted"),
  seq: t.Integer(),
  message_id: t.String({ format: "uuid" }),
  deleted_by: t.String(),
  deleted_at: t.String({ format: "date-time" }),
});
