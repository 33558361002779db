import { Elysia } from "elysia";
import { ErrorBody } from "../../http/errors.ts";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { requestIdempotentId } from "../../http/idempotency.ts";
import { ChannelIdParams } from "../channels/model.ts";
import { toMessageView } from "../messages/view.ts";
import type { AgentService } from "./service.ts";
import { AgentParams, AgentPostBody, AgentPostResult, ChannelContext } from "./model.ts";

export const agentsController = (agents: AgentService) =>
  new Elysia({ name: "agents.controller", prefix: "/internal" })
    .post(
      "/agents/:agent_id/post-to-channel",
      async ({ request, params, body, set }) => {
        const agentId = params.agent_id.startsWith("agent:") ? params.agent_id : `agent:${params.agent_id}`;
        // The acting user is optional: a service may post on an agent's behalf alone.
        const namesCaller = request.headers.has("x-user-id") || request.headers.has("authorization");
        const caller = namesCaller ? await authenticate(request) : null;
        // With an Idempotency-Key the message id derives from it, so a retry after a crash finds the first post.
        const id = requestIdempotentId(request, caller);
        const { row, confirmed } = await agents.post(agentId, caller, body.channel_id, body.text, id, body.link_preview);
        if (!confirmed) set.status = 202;
        return { status: confirmed ? ("posted" as const) : ("pending" as const), message_id: row.id, message: toMessageView(row) };
      },
      {
        params: AgentParams,
        headers: IdentityHeaders,
        body: AgentPostBody,
        response: { 200: AgentPostResult, 202: AgentPostResult, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 410: ErrorBody, 502: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "An agent posts into a channel it is a member of (sent as m.notice, indexed as sender_type agent)",
          tags: ["internal"],
        },
      },
    )
    .get("/messaging/channels/:id/context", ({ params }) => agents.context(params.id), {
      params: ChannelIdParams,
      response: { 200: ChannelContext, 400: ErrorBody, 404: ErrorBody },
      detail: { summary: "Channel context for the agent filter", tags: ["internal"] },
    });
