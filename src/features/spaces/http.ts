import { Elysia } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { requestIdempotentId } from "../../http/idempotency.ts";
import { ErrorBody } from "../../http/errors.ts";
import type { SpaceService } from "./service.ts";
import {
  CreateGroupBody,
  GroupParams,
  MicrodaoParams,
  PlaceChannelBody,
  SpaceChannelParams,
  SpaceChannelView,
  SpaceGroupView,
  SpaceView,
  UpdateGroupBody,
} from "./model.ts";

export const spacesController = (spaces: SpaceService) =>
  new Elysia({ name: "spaces.controller", prefix: "/api/messaging/microdaos", detail: { tags: ["spaces"] } })
    .get("/:id/space", async ({ request, headers, params }) => spaces.get(await authenticate(request), params.id), {
      headers: IdentityHeaders,
      params: MicrodaoParams,
      response: { 200: SpaceView, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 502: ErrorBody },
      detail: {
        summary: "The microDAO's Matrix space: its groups (sub-spaces) and the channels the caller may see, in m.space.child order; rooms Matrix users added that are not channels (owners and admins only)",
        tags: ["spaces"],
      },
    })
    .post("/:id/space", async ({ request, headers, params }) => spaces.ensure(await authenticate(request), params.id), {
      headers: IdentityHeaders,
      params: MicrodaoParams,
      response: { 200: SpaceView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 502: ErrorBody },
      detail: {
        summary: "Make the microDAO's space if it is missing and bring its Matrix state up to date (channels made before spaces join it); owners and admins",
        tags: ["spaces"],
      },
    })
    .post(
      "/:id/groups",
      async ({ request, headers, params, body, set }) => {
        const caller = await authenticate(request);
        const group = await spaces.createGroup(caller, params.id, body, requestIdempotentId(request, caller));
        set.status = 201;
        return group;
      },
      {
        headers: IdentityHeaders,
        params: MicrodaoParams,
        body: CreateGroupBody,
        response: { 201: SpaceGroupView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 502: ErrorBody },
        detail: { summary: "Create a channel group: a sub-space, child of the microDAO's space (owners and admins)", tags: ["spaces"] },
      },
    )
    .patch(
      "/:id/groups/:gid",
      async ({ request, headers, params, body }) => spaces.updateGroup(await authenticate(request), params.id, params.gid, body),
      {
        headers: IdentityHeaders,
        params: GroupParams,
        body: UpdateGroupBody,
        response: { 200: SpaceGroupView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 502: ErrorBody },
        detail: { summary: "Rename a channel group or change its order in the space (owners and admins)", tags: ["spaces"] },
      },
    )
    .patch(
      "/:id/space/channels/:channel_id",
      async ({ request, headers, params, body }) => spaces.placeChannel(await authenticate(request), params.id, params.channel_id, body),
      {
        headers: IdentityHeaders,
        params: SpaceChannelParams,
        body: PlaceChannelBody,
        response: { 200: SpaceChannelView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 410: ErrorBody, 502: ErrorBody },
        detail: { summary: "Move a channel into a group (or back into the space) and/or change its order (the channel's owners and admins)", tags: ["spaces"] },
      },
    );
