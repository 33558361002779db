import { t } from "elysia";
import { MessageView } from "../messages/model.ts";

export const MentionsQuery = t.Object(
  {
    limit: t.Optional(t.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: t.Optional(t.String({ pattern: "^[0-9]{1,18}$", description: "X-Next-Cursor from the previous page." })),
    channel_id: t.Optional(t.String({ format: "uuid", description: "Only this channel" })),
  },
  { additionalProperties: false },
);

export const MentionView = t.Composite([
  MessageView,
  t.Object({ mentioned_at: t.String({ format: "date-time", description: "When the message mentioning the caller was sent" }) }),
]);
