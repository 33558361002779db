import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { requestIdempotentId } from "../../http/idempotency.ts";
import { ErrorBody } from "../../http/errors.ts";
import type { ChannelService } from "./service.ts";
import {
  ChannelIdParams,
  ChannelView,
  CreateChannelBody,
  ListChannelsQuery,
  UpdateChannelBody,
  toChannelView,
} from "./model.ts";

export const channelsController = (channels: ChannelService) =>
  new Elysia({ name: "channels.controller", prefix: "/api/messaging/channels", detail: { tags: ["channels"] } })
    .get(
      "/",
      async ({ request, headers, query }) => {
        const caller = await authenticate(request);
        const rows = await channels.list(caller, query.microdao_id ?? null, query.include_archived ?? false);
        const unread = await channels.unreadCounts(caller, rows.map((r) => r.id));
        return rows.map((r) => ({ ...toChannelView(r), unread_count: unread.get(r.id) ?? 0 }));
      },
      {
        headers: IdentityHeaders,
        query: ListChannelsQuery,
        response: { 200: t.Array(ChannelView), 401: ErrorBody },
        detail: { summary: "Channels the caller may see (public ones and their own)", tags: ["channels"] },
      },
    )
    .post(
      "/",
      async ({ request, headers, body, set }) => {
        const caller = await authenticate(request);
        // With an Idempotency-Key the channel id derives from it, so a retry after a crash finds (or finishes) the first creation.
        const row = await channels.create(caller, body, requestIdempotentId(request, caller));
        set.status = 201;
        return toChannelView(row);
      },
      {
        headers: IdentityHeaders,
        body: CreateChannelBody,
        response: { 201: ChannelView, 400: ErrorBody, 401: ErrorBody, 409: ErrorBody, 502: ErrorBody },
        detail: { summary: "Create a channel and its Matrix room; the creator becomes its owner", tags: ["channels"] },
      },
    )
    .get(
      "/:id",
      async ({ request, headers, params }) => toChannelView(await channels.get(await authenticate(request), params.id)),
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        response: { 200: ChannelView, 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "One channel", tags: ["channels"] },
      },
    )
    .patch(
      "/:id",
      async ({ request, headers, params, body }) =>
        toChannelView(await channels.update(await authenticate(request), params.id, body)),
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        body: UpdateChannelBody,
        response: { 200: ChannelView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: { summary: "Change name, description or topic, or visibility; mirrored into the Matrix room state", tags: ["channels"] },
      },
    );
