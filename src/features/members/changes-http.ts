import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { ChannelIdParams } from "../channels/model.ts";
import { MemberView, toMemberView } from "./model.ts";
import type { MembershipService } from "./changes-service.ts";
import { ChannelEventView, ChannelEventsQuery, MemberParams, RemoveMemberQuery, RemovedMemberView, UpdateMemberBody, toChannelEventView } from "./changes-model.ts";

export const membershipController = (membership: MembershipService) =>
  new Elysia({ name: "membership.controller", prefix: "/api/messaging/channels" })
    .delete(
      "/:id/members/:member_id",
      async ({ request, headers, params, query }) => {
        const { row, kicked } = await membership.remove(await authenticate(request), params.id, params.member_id, query.reason ?? null);
        return { channel_id: row.channel_id, member_id: row.member_id, status: kicked ? ("kicked" as const) : ("left" as const), left_at: row.left_at!.toISOString() };
      },
      {
        headers: IdentityHeaders,
        params: MemberParams,
        query: RemoveMemberQuery,
        response: { 200: RemovedMemberView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 410: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "Leave (member_id is the caller) or kick a member (can_kick, or owner/admin); a Matrix leave or kick",
          tags: ["members"],
        },
      },
    )
    .patch(
      "/:id/members/:member_id",
      async ({ request, headers, params, body }) => toMemberView(await membership.update(await authenticate(request), params.id, params.member_id, body)),
      {
        headers: IdentityHeaders,
        params: MemberParams,
        body: UpdateMemberBody,
        response: { 200: MemberView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 410: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "Change a member's role and capabilities (owners and admins); the role's power (owner 100, admin 50, else 0) goes into m.room.power_levels",
          tags: ["members"],
        },
      },
    )
    .get(
      "/:id/events",
      async ({ request, headers, params, query, set }) => {
        const page = await membership.events(await authenticate(request), params.id, {
          limit: query.limit ?? 50,
          cursor: query.cursor ?? null,
          type: query.type ?? null,
        });
        if (page.nextCursor) set.headers["x-next-cursor"] = page.nextCursor;
        return page.rows.map(toChannelEventView);
      },
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        query: ChannelEventsQuery,
        response: { 200: t.Array(ChannelEventView), 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
        detail: {
          summary: "The channel's audit log, newest first (paged with X-Next-Cursor; ?type= filters)",
          tags: ["channels"],
        },
      },
    );
