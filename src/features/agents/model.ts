import { t } from "elysia";
import { LinkPreviewOption, MessageView } from "../messages/model.ts";

export const AgentParams = t.Object({
  agent_id: t.String({
    pattern: "^(agent:)?[a-z0-9][a-z0-9._-]{0,62}$",
    description: "`agent:sofia`, or just `sofia`",
    examples: ["agent:sofia"],
  }),
});

export const AgentPostBody = t.Object(
  {
    channel_id: t.String({ format: "uuid" }),
    text: t.String({ minLength: 1, maxLength: 10000 }),
    link_preview: LinkPreviewOption,
  },
  { additionalProperties: false },
);

export const AgentPostResult = t.Object({
  status: t.Union([t.Literal("posted"), t.Literal("pending")], { description: "pending (202): accepted, Matrix has not confirmed yet" }),
  message_id: t.String({ format: "uuid" }),
  message: MessageView,
});

export const ChannelContext = t.Object({
  channel_id: t.String({ format: "uuid" }),
  microdao_id: t.String(),
  visibility: t.String(),
  allowed_agents: t.Array(t.String(), { description: "Member agents with the right to write" }),
  disabled_agents: t.Array(t.String(), { description: "Member agents whose right to write is withdrawn" }),
});
