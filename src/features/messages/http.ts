import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { requestIdempotentId } from "../../http/idempotency.ts";
import { ErrorBody } from "../../http/errors.ts";
import type { MessagePageResult, MessageService } from "./service.ts";
import { toMessageView } from "./view.ts";
import { withSafeHtml } from "../../domain/html.ts";
import { ChannelIdParams, ListMessagesQuery, MessageDetail, MessageParams, MessageView, SendMessageBody } from "./model.ts";

export const messagesController = (messages: MessageService) =>
  new Elysia({ name: "messages.controller", prefix: "/api/messaging/channels" })
    .get(
      "/:id/messages",
      async ({ request, params, query, set }) =>
        pageResponse(await messages.list(await authenticate(request), params.id, pageOptions(query)), set.headers),
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        query: ListMessagesQuery,
        response: { 200: t.Array(MessageView), 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
        detail: {
          summary: "Messages, newest first",
          description:
            "The body is an array, as in the seed. When more pages exist, the X-Next-Cursor response header carries the cursor for the next, older page (`?cursor=`). Paging by cursor never skips or repeats a message while new ones arrive.",
          tags: ["messages"],
        },
      },
    )
    .get(
      "/:id/messages/:message_id/thread",
      async ({ request, params, query, set }) =>
        pageResponse(await messages.thread(await authenticate(request), params.id, params.message_id, pageOptions(query)), set.headers),
      {
        headers: IdentityHeaders,
        params: MessageParams,
        query: ListMessagesQuery,
        response: { 200: t.Array(MessageView), 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
        detail: {
          summary: "A thread's replies, newest first (paged with X-Next-Cursor like the channel listing)",
          tags: ["messages"],
        },
      },
    )
    .post(
      "/:id/messages",
      async ({ request, headers, params, body, set }) => {
        const caller = await authenticate(request);
        const { row, confirmed } = await messages.send(caller, params.id, body, requestIdempotentId(request, caller));
        set.status = confirmed ? 201 : 202;
        return toMessageView(row);
      },
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        body: SendMessageBody,
        response: { 201: MessageView, 202: MessageView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 410: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "Send a message",
          description:
            "201: Matrix confirmed it (matrix_event_id set). 202: accepted and durable, still pending (Matrix was slow or unreachable); a message.updated frame follows on confirmation, or message.failed if Matrix refuses it. 502 MATRIX_REFUSED: Matrix refused it for good; it stays as a failed message.",
          tags: ["messages"],
        },
      },
    )
    .get(
      "/:id/messages/:message_id",
      async ({ request, headers, params }) => {
        const { row, content, thread, reactions } = await messages.get(await authenticate(request), params.id, params.message_id);
        // Matrix users' clients send any HTML they like: clients of the API get the allow-list only.
        return { ...toMessageView(row, thread, reactions), content: withSafeHtml(content) };
      },
      {
        headers: IdentityHeaders,
        params: MessageParams,
        response: { 200: MessageDetail, 401: ErrorBody, 404: ErrorBody, 502: ErrorBody },
        detail: { summary: "One message: the index row plus the full Matrix content", tags: ["messages"] },
      },
    );

function pageOptions(query: { limit?: number; cursor?: string; before?: string }) {
  return { limit: query.limit ?? 50, cursor: query.cursor ?? null, before: query.before ? new Date(query.before) : null };
}

/** A page of messages as the API shows it; the next page's cursor travels in X-Next-Cursor. */
function pageResponse(page: MessagePageResult, headers: Record<string, unknown>) {
  if (page.nextCursor) headers["x-next-cursor"] = page.nextCursor;
  return page.messages.map((m) => toMessageView(m, page.threads.get(m.id), page.reactions.get(m.id)));
}
