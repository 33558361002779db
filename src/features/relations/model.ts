import { MentionIds } from "../messages/model.ts";
import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
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
    mentions: MentionIds(
      "As in a send: members to mention besides those the new text names. The new version's mentions replace the message's; only the newly mentioned agents get messaging.agent.mentioned.",
    ),
    link_preview: t.Optional(
      t.Boolean({
        description:
          "As in a send. Left out, the message keeps its sender's choice. A new first link gets a new preview (the old one goes at once, in this edit's message.updated); the same link keeps its preview; no link, none.",
      }),
    ),
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

export { MessageDeletedFrame, MessageUpdatedFrame, ReactionAddedFrame, ReactionRemovedFrame } from "../../wire/frames.ts";
