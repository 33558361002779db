import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MessageView } from "../messages/model.ts";
import { MemberView } from "../members/model.ts";
import { ChannelView } from "../channels/model.ts";
import { MessageDeletedFrame, MessageUpdatedFrame, ReactionAddedFrame, ReactionRemovedFrame } from "../../features/relations/model.ts";

/** Frames the server pushes on /ws/messaging/{channel_id}. Plain "ping" is answered with "pong". */
export const MessageCreatedFrame = t.Object({ type: t.Literal("message.created"), seq: t.Integer(), message: MessageView });
export const MemberJoinedFrame = t.Object({ type: t.Literal("member.joined"), member: MemberView });
export const MemberLeftFrame = t.Object({ type: t.Literal("member.left"), member: MemberView });
export const ChannelUpdatedFrame = t.Object({ type: t.Literal("channel.updated"), channel: ChannelView });
export const ServerFrame = t.Union([
  MessageCreatedFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  ChannelUpdatedFrame,
  ReactionAddedFrame,
  ReactionRemovedFrame,
  MessageUpdatedFrame,
  MessageDeletedFrame,
]);
export type ServerFrame = Static<typeof ServerFrame>;

export const WsParams = t.Object({ channel_id: t.String({ format: "uuid" }) });
export const WsQuery = t.Object({
  user_id: t.Optional(t.String({ description: "Identity for browsers, which cannot set X-User-Id on a WebSocket." })),
});

export const channelTopic = (channelId: string) => `channel:${channelId}`;
