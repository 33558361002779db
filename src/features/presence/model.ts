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

/** Everyone typing in the channel now (the whole list each time, as Matrix's m.typing has it). */
export const TypingFrame = t.Object({
  type: t.Literal("typing"),
  user_ids: t.Array(t.String(), { examples: [["user:alice", "matrix:@bob:daarion.city"]] }),
});
export type TypingFrame = Static<typeof TypingFrame>;

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

/** A member's read position moved forward (from the API or a Matrix read receipt). */
export const ReadFrame = t.Object({
  type: t.Literal("read"),
  member_id: t.String(),
  last_read_seq: t.Integer(),
  last_read_message_id: t.Nullable(t.String({ format: "uuid" })),
  last_read_event_id: t.Nullable(t.String()),
  updated_at: t.String({ format: "date-time" }),
});
export type ReadFrame = Static<typeof ReadFrame>;
