import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { ChannelIdParams } from "../channels/model.ts";
import type { MemberService } from "./service.ts";
import {
  ChannelEventView,
  ChannelEventsQuery,
  InviteMemberBody,
  MemberParams,
  MemberView,
  PendingInviteView,
  RemoveMemberQuery,
  RemovedMemberView,
  UpdateMemberBody,
  toChannelEventView,
  toMemberView,
} from "./model.ts";

export const membersController = (members: MemberService) =>
  new Elysia({ name: "members.controller", prefix: "/api/messaging/channels" })
    .get(
      "/:id/members",
      async ({ request, headers, params }) => (await members.list(await authenticate(request), params.id)).map(toMemberView),
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        response: { 200: t.Array(MemberView), 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "Current members", tags: ["members"] },
      },
    )
    .post(
      "/:id/members",
      async ({ request, headers, params, body, set }) => {
        // With an Idempotency-Key, reaching here means no answer was kept: a rerun after a crash may find the first attempt's member.
        const result = await members.invite(await authenticate(request), params.id, body, request.headers.has("idempotency-key"));
        if ("status" in result) {
          set.status = 202;
          return result;
        }
        set.status = 201;
        return toMemberView(result);
      },
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        body: InviteMemberBody,
        response: { 201: MemberView, 202: PendingInviteView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "Invite a user or agent (201: invited and joined in Matrix under its mapped id), or a Matrix user `matrix:@bob:server` (202: invited; a member once they accept)",
          tags: ["members"],
        },
      },
    )
    .delete(
      "/:id/members/:member_id",
      async ({ request, headers, params, query }) => {
        const { row, kicked } = await members.remove(await authenticate(request), params.id, params.member_id, query.reason ?? null);
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
      async ({ request, headers, params, body }) => toMemberView(await members.update(await authenticate(request), params.id, params.member_id, body)),
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
        const page = await members.events(await authenticate(request), params.id, {
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
