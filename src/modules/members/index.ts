import { Elysia, t } from "elysia";
import { callerFrom, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { ChannelIdParams } from "../channels/model.ts";
import type { MemberService } from "./service.ts";
import { InviteMemberBody, MemberView, toMemberView } from "./model.ts";

export const membersController = (members: MemberService) =>
  new Elysia({ name: "members.controller", prefix: "/api/messaging/channels" })
    .get(
      "/:id/members",
      async ({ headers, params }) => (await members.list(callerFrom(headers["x-user-id"]), params.id)).map(toMemberView),
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        response: { 200: t.Array(MemberView), 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "Current members", tags: ["members"] },
      },
    )
    .post(
      "/:id/members",
      async ({ headers, params, body, set }) => {
        const row = await members.invite(callerFrom(headers["x-user-id"]), params.id, body);
        set.status = 201;
        return toMemberView(row);
      },
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        body: InviteMemberBody,
        response: { 201: MemberView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "Invite a user or agent; it is invited and joined in Matrix under its mapped id",
          tags: ["members"],
        },
      },
    );
