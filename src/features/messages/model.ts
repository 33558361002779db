import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { ChannelIdParams } from "../channels/model.ts";
import { MessageView } from "../../wire/views.ts";
import { MAX_MENTIONS } from "../../domain/mentions.ts";
import { DAARION_ID_PATTERN, MATRIX_MEMBER_PATTERN } from "../../domain/ids.ts";

/** A member id: `user:alice`, `agent:sofia` or `matrix:@bob:example.org`. */
const MENTION_ID_PATTERN = `(${DAARION_ID_PATTERN})|(${MATRIX_MEMBER_PATTERN})`;

/** A send's (or an edit's) explicit mentions. */
export const MentionIds = (description: string) => t.Optional(t.Array(t.String({ pattern: MENTION_ID_PATTERN }), { maxItems: MAX_MENTIONS, description }));

export { MessageView };

export const MSGTYPES = ["m.text", "m.notice", "m.image", "m.file", "m.audio", "m.video"] as const;
export const Msgtype = t.Union(MSGTYPES.map((m) => t.Literal(m)), { default: "m.text" });

/** A sender's say on the preview of the message's first link (README "Link previews"). */
export const LinkPreviewOption = t.Optional(
  t.Boolean({
    description:
      "false: no link preview for this message (and Matrix gets an empty MSC4095 list, com.beeper.linkpreviews: [], so Matrix clients show none either). Default true: the first http(s) link of a text message gets a preview shortly after it is sent, announced by message.updated.",
  }),
);

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
    mentions: MentionIds(
      "Members to mention besides those the text names as @member-id (`@agent:sofia`). Each must be a current member who may read the channel (400 INVALID_MENTION otherwise). Matrix gets m.mentions and a pill per mention.",
    ),
    link_preview: LinkPreviewOption,
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
