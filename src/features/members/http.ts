import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { ChannelIdParams } from "../channels/model.ts";
import type { MemberService } from "./service.ts";
import { InviteMemberBody, MemberView, PendingInviteView, toMemberView } from "./model.ts";

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
    );
