import { t } from "elysia";
import type { Static } from "@sinclair/typebox";

export const DEFAULT_TYPING_TIMEOUT_MS = 30_000;
const TypingTimeout = t.Integer({
  minimum: 1000,
  maximum: 120_000,
  description: `How long the indicator lasts unless renewed (default ${DEFAULT_TYPING_TIMEOUT_MS})`,
});

export const TypingBody = t.Object(
  { typing: t.Boolean(), timeout_ms: t.Optional(TypingTimeout) },
  { additionalProperties: false },
);
export type TypingBody = Static<typeof TypingBody>;

/** What a WebSocket client may send besides the plain-text "ping". */
export const TypingClientFrame = t.Object(
  { type: t.Literal("typing"), typing: t.Boolean(), timeout_ms: t.Optional(TypingTimeout) },
  { additionalProperties: false },
);


export const TypingView = t.Object({ user_ids: t.Array(t.String()) });

export const MarkReadBody = t.Object(
  { message_id: t.String({ format: "uuid", description: "The last message read; everything up to it counts as read" }) },
  { additionalProperties: false },
);

export const ReadStateView = t.Object({
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  last_read_seq: t.Integer(),
  last_read_message_id: t.Nullable(t.String({ format: "uuid" })),
  last_read_event_id: t.Nullable(t.String()),
  unread_count: t.Integer(),
  updated_at: t.String({ format: "date-time" }),
});
export type ReadStateView = Static<typeof ReadStateView>;

export { ReadFrame, TypingFrame } from "../../wire/frames.ts";
