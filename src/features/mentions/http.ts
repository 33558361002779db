import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { toMessageView } from "../messages/view.ts";
import type { MentionService } from "./service.ts";
import { MentionsQuery, MentionView } from "./model.ts";

export const mentionsController = (mentions: MentionService) =>
  new Elysia({ name: "mentions.controller", prefix: "/api/messaging" }).get(
    "/mentions",
    async ({ request, query, set }) => {
      const page = await mentions.list(await authenticate(request), {
        limit: query.limit ?? 50,
        cursor: query.cursor ?? null,
        channelId: query.channel_id ?? null,
      });
      if (page.nextCursor) set.headers["x-next-cursor"] = page.nextCursor;
      return page.rows.map((r) => ({
        ...toMessageView(r, page.threads.get(r.id), page.reactions.get(r.id)),
        mentioned_at: r.mentioned_at.toISOString(),
      }));
    },
    {
      headers: IdentityHeaders,
      query: MentionsQuery,
      response: { 200: t.Array(MentionView), 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      detail: {
        summary: "Messages that mention the caller, newest first",
        description:
          "Across every channel the caller may still read (public, a member with can_read, or a microdao channel of the caller's microDAOs), thread replies included; deleted messages and failed sends are left out. When more pages exist, the X-Next-Cursor response header carries the cursor for the next, older page (`?cursor=`).",
        tags: ["messages"],
      },
    },
  );
