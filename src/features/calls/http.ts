import { Elysia } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { ChannelIdParams } from "../channels/model.ts";
import type { CallService } from "./service.ts";
import { CallView, TurnServerView } from "./model.ts";

export const callsController = (calls: CallService) =>
  new Elysia({ name: "calls.controller", prefix: "/api/messaging" })
    .get("/channels/:id/call", async ({ request, headers, params }) => calls.channelCall(await authenticate(request), params.id), {
      headers: IdentityHeaders,
      params: ChannelIdParams,
      response: { 200: CallView, 401: ErrorBody, 404: ErrorBody },
      detail: {
        summary: "Whether a call is on in the channel, who is in it since when, and a link to join it in Element",
        description:
          "Indexed from Matrix: MatrixRTC `org.matrix.msc3401.call.member` state (expired memberships do not count) and legacy 1:1 `m.call.*` events. Changes are pushed as `call.updated` frames and on NATS `messaging.call.updated`. The service never writes call state.",
        tags: ["calls"],
      },
    })
    .get("/voip/turn", async ({ request, headers }) => calls.turnServer(await authenticate(request)), {
      headers: IdentityHeaders,
      response: { 200: TurnServerView, 401: ErrorBody, 502: ErrorBody, 503: ErrorBody },
      detail: {
        summary: "TURN credentials for the caller, from the homeserver's /voip/turnServer",
        description:
          "Asked of the homeserver as the caller's Matrix user. `503 TURN_UNAVAILABLE` when the homeserver has no TURN server configured. Media never passes through this service.",
        tags: ["calls"],
      },
    });
