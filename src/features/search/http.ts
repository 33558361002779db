import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { toMessageView } from "../messages/view.ts";
import type { SearchService } from "./service.ts";
import { SearchHit, SearchQuery } from "./model.ts";

export const searchController = (search: SearchService) =>
  new Elysia({ name: "search.controller", prefix: "/api/messaging" }).get(
    "/search",
    async ({ request, headers, query, set }) => {
      const page = await search.search(await authenticate(request), {
        q: query.q,
        channelId: query.channel_id ?? null,
        senderId: query.sender_id ?? null,
        limit: query.limit ?? 20,
        offset: query.offset ?? 0,
      });
      if (page.nextOffset !== null) set.headers["x-next-offset"] = String(page.nextOffset);
      return page.hits.map((h) => ({ ...toMessageView(h, page.threads.get(h.id), page.reactions.get(h.id)), rank: h.rank }));
    },
    {
      headers: IdentityHeaders,
      query: SearchQuery,
      response: { 200: t.Array(SearchHit), 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      detail: {
        summary: "Full-text search over message previews in the channels the caller may read",
        description:
          "Best match first (ts_rank) among the newest 1,000 matches, then newest. Paged by offset: when more may follow, the X-Next-Offset response header carries the next page's `offset`; pages end at the 1,000th match. Thread replies are included; deleted messages and failed sends are not.",
        tags: ["messages"],
      },
    },
  );
