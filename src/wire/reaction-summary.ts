import { t } from "elysia";
import type { Static } from "@sinclair/typebox";

/** One emoji on a message: how many members reacted with it, and whether the caller did. */
export const ReactionSummary = t.Object({
  emoji: t.String(),
  count: t.Integer({ minimum: 1 }),
  me: t.Boolean({ description: "Whether the caller reacted with this emoji (always false in WebSocket frames, which have no single caller)" }),
});
export type ReactionSummary = Static<typeof ReactionSummary>;
