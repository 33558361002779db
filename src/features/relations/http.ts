import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { MessageParams, MessageView } from "../messages/model.ts";
import type { RelationsService } from "./service.ts";
import { DeletedResult, EditBody, EditVersion, ReactionBody, ReactionQuery, ReactionResult } from "./model.ts";

const refusals = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 502: ErrorBody, 503: ErrorBody };

export const relationsController = (relations: RelationsService) =>
  new Elysia({ name: "relations.controller", prefix: "/api/messaging/channels" })
    .post(
      "/:id/messages/:message_id/reactions",
      async ({ request, headers, params, body }) => relations.react(await authenticate(request), params.id, params.message_id, body.emoji),
      {
        headers: IdentityHeaders,
        params: MessageParams,
        body: ReactionBody,
        response: { 200: ReactionResult, ...refusals },
        detail: {
          summary: "React with an emoji (m.reaction); reacting again with the same emoji changes nothing",
          tags: ["reactions"],
        },
      },
    )
    .delete(
      "/:id/messages/:message_id/reactions",
      async ({ request, headers, params, query }) => relations.unreact(await authenticate(request), params.id, params.message_id, query.emoji),
      {
        headers: IdentityHeaders,
        params: MessageParams,
        query: ReactionQuery,
        response: { 200: ReactionResult, ...refusals },
        detail: {
          summary: "Remove your reaction (?emoji=, URL-encoded): the m.reaction event is redacted. Idempotent.",
          tags: ["reactions"],
        },
      },
    )
    .patch(
      "/:id/messages/:message_id",
      async ({ request, headers, params, body }) => relations.edit(await authenticate(request), params.id, params.message_id, body),
      {
        headers: IdentityHeaders,
        params: MessageParams,
        body: EditBody,
        response: { 200: MessageView, ...refusals },
        detail: { summary: "Edit your message (m.replace with m.new_content); only the sender may", tags: ["messages"] },
      },
    )
    .delete(
      "/:id/messages/:message_id",
      async ({ request, headers, params }) => relations.remove(await authenticate(request), params.id, params.message_id),
      {
        headers: IdentityHeaders,
        params: MessageParams,
        response: { 200: DeletedResult, ...refusals },
        detail: {
          summary: "Delete a message (Matrix redaction): the sender, or a member with can_kick, admin or owner",
          tags: ["messages"],
        },
      },
    )
    .get(
      "/:id/messages/:message_id/edits",
      async ({ request, headers, params }) => relations.edits(await authenticate(request), params.id, params.message_id),
      {
        headers: IdentityHeaders,
        params: MessageParams,
        response: { 200: t.Array(EditVersion), 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "A message's versions, oldest first; version 1 is the original", tags: ["messages"] },
      },
    );
