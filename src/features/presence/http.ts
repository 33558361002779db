import { Elysia } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { ChannelIdParams } from "../channels/model.ts";
import type { ServiceDeps } from "../deps.ts";
import { PresenceService } from "./service.ts";
import { MarkReadBody, ReadStateView, TypingBody, TypingView } from "./model.ts";

export const presenceController = (deps: ServiceDeps, presence = new PresenceService(deps)) =>
  new Elysia({ name: "presence.controller", prefix: "/api/messaging/channels" })
    .post(
      "/:id/typing",
      async ({ request, headers, params, body }) => ({
        user_ids: await presence.setTyping(await authenticate(request), params.id, body.typing, body.timeout_ms),
      }),
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        body: TypingBody,
        response: { 200: TypingView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "Start or stop the caller's typing indicator; answers who types now",
          description: "Sent to Matrix as the caller's typing notification and pushed as a `typing` frame on the channel's WebSocket.",
          tags: ["messages"],
        },
      },
    )
    .post(
      "/:id/read",
      async ({ request, headers, params, body }) => presence.markRead(await authenticate(request), params.id, body.message_id),
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        body: MarkReadBody,
        response: { 200: ReadStateView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "Mark everything up to a message read",
          description:
            "Moves the caller's read position forward (never back): in Matrix as m.fully_read and a public m.read receipt, in the index, as a `read` frame on the channel's WebSocket and on NATS `messaging.message.read`.",
          tags: ["messages"],
        },
      },
    );
