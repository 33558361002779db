import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MessageView } from "../messages/model.ts";
import { MemberView } from "../members/model.ts";
import { ChannelView } from "../channels/model.ts";
import { ReadFrame, TypingClientFrame, TypingFrame } from "../../features/presence/model.ts";
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
  TypingFrame,
  ReadFrame,
]);
export type ServerFrame = Static<typeof ServerFrame>;

/** JSON frames a client may send (besides the plain-text "ping"). */
export const ClientFrame = t.Union([TypingClientFrame]);
export type ClientFrame = Static<typeof ClientFrame>;

export const WsParams = t.Object({ channel_id: t.String({ format: "uuid" }) });
export const WsQuery = t.Object({
  user_id: t.Optional(t.String({ description: "Identity for browsers, which cannot set X-User-Id on a WebSocket." })),
});

export const channelTopic = (channelId: string) => `channel:${channelId}`;
