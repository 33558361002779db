import { Elysia } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { ErrorBody } from "../../http/errors.ts";
import { ChannelIdParams, ChannelView, toChannelView } from "../channels/model.ts";
import type { ServiceDeps } from "../deps.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { requireAdmin } from "../../domain/rights.ts";
import { syncSpaceQuietly } from "../spaces/sync.ts";

export const archiveController = (deps: ServiceDeps) =>
  new Elysia({ name: "archive.controller", prefix: "/api/messaging/channels" }).delete(
    "/:id",
    async ({ request, headers, params }) => {
      const callerId = await authenticate(request);
      // requireAdmin also answers 410 for a channel archived already.
      requireAdmin(await readableChannel(deps.sql, callerId, params.id));
      const archived = await deps.registry.run(params.id, "archive.archive", { callerId });
      // An archived channel is no longer a child of its microDAO's space.
      await syncSpaceQuietly(deps, archived.microdao_id);
      return toChannelView(archived);
    },
    {
      headers: IdentityHeaders,
      params: ChannelIdParams,
      response: { 200: ChannelView, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 410: ErrorBody, 502: ErrorBody, 503: ErrorBody },
      detail: {
        summary: "Archive the channel (owners and admins): it stays readable, every change is 410 CHANNEL_ARCHIVED; the Matrix room becomes invite-only and read-only",
        tags: ["channels"],
      },
    },
  );
