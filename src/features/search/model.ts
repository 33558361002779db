import { t } from "elysia";
import { MessageView } from "../messages/model.ts";

export const SearchQuery = t.Object(
  {
    q: t.String({
      minLength: 1,
      maxLength: 500,
      description: 'Words to find (all of them), web-search syntax: "a phrase", or, -excluded. Case-insensitive, no stemming.',
    }),
    channel_id: t.Optional(t.String({ format: "uuid", description: "Only this channel" })),
    sender_id: t.Optional(t.String({ minLength: 1, maxLength: 200, description: "Only this sender, e.g. user:alice or matrix:@bob:example.org" })),
    limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20 })),
    offset: t.Optional(t.Integer({ minimum: 0, maximum: 10000, default: 0, description: "X-Next-Offset from the previous page; past the 1,000 ranked matches a page is empty" })),
  },
  { additionalProperties: false },
);

export const SearchHit = t.Composite([
  MessageView,
  t.Object({ rank: t.Number({ description: "ts_rank of the match; higher is better" }) }),
]);
