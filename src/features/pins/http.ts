import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { ChannelIdParams } from "../channels/model.ts";
import type { PinService } from "./service.ts";
import { PinBody, PinParams, PinView, toPinView } from "./model.ts";

export const pinsController = (pins: PinService) =>
  new Elysia({ name: "pins.controller", prefix: "/api/messaging/channels" })
    .get(
      "/:id/pins",
      async ({ request, headers, params }) => (await pins.list(await authenticate(request), params.id)).map((p) => toPinView(p.pin, p.message)),
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        response: { 200: t.Array(PinView), 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "Pinned messages, most recently pinned first", tags: ["messages"] },
      },
    )
    .post(
      "/:id/pins",
      async ({ request, headers, params, body, set }) => {
        const { pin, message } = await pins.pin(await authenticate(request), params.id, body.message_id);
        set.status = 201;
        return toPinView(pin, message);
      },
      {
        headers: IdentityHeaders,
        params: ChannelIdParams,
        body: PinBody,
        response: { 201: PinView, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 410: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: { summary: "Pin a message (members with can_write): added to the room's m.room.pinned_events", tags: ["messages"] },
      },
    )
    .delete(
      "/:id/pins/:message_id",
      async ({ request, headers, params, set }) => {
        await pins.unpin(await authenticate(request), params.id, params.message_id);
        set.status = 204;
      },
      {
        headers: IdentityHeaders,
        params: PinParams,
        response: { 204: t.Void(), 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 410: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: { summary: "Unpin a message (members with can_write)", tags: ["messages"] },
      },
    );
