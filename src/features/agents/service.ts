import type { ServiceDeps } from "../deps.ts";
import type { SendOutcome } from "../../channel/registry.ts";
import { findChannel } from "../../store/channels.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { listSilencedAgents, listWritingAgents } from "../../store/members.ts";
import { channelArchived, forbidden, notFound } from "../../errors.ts";

export class AgentService {
  constructor(private readonly deps: ServiceDeps) {}

  /** Only a current member agent with the right to write may post; it goes out as m.notice. */
  /** `id`, when given (derived from an Idempotency-Key), makes a rerun find the same message. */
  async post(agentId: string, callerId: string | null, channelId: string, text: string, id?: string, linkPreview?: boolean): Promise<SendOutcome> {
    if (callerId !== null && callerId !== agentId) throw forbidden(`${callerId} may not post as ${agentId}`);
    // A channel the agent may not read does not exist for it (404), like for any caller.
    const { channel, member } = await readableChannel(this.deps.sql, agentId, channelId);
    if (channel.archived_at) throw channelArchived();
    if (!member) throw forbidden(`${agentId} is not a member of this channel`);
    if (!member.can_write) throw forbidden(`${agentId} may not write in this channel`);
    return this.deps.registry.send(channelId, {
      id,
      senderId: agentId,
      text,
      msgtype: "m.notice",
      formattedBody: null,
      replyTo: null,
      joinFirst: false,
      linkPreview,
    }, this.deps.sendConfirmMs);
  }

  /** The agent filter's view of a channel, with the allow-list taken from real membership. */
  async context(channelId: string) {
    const channel = await findChannel(this.deps.sql, channelId);
    if (!channel) throw notFound("channel");
    const [allowed, disabled] = await Promise.all([
      listWritingAgents(this.deps.sql, channelId),
      listSilencedAgents(this.deps.sql, channelId),
    ]);
    return {
      channel_id: channel.id,
      microdao_id: channel.microdao_id,
      visibility: channel.visibility,
      allowed_agents: allowed,
      disabled_agents: disabled,
    };
  }
}
