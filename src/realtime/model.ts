import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MessageView } from "../features/messages/model.ts";
import { MemberView } from "../features/members/model.ts";
import { ChannelView } from "../features/channels/model.ts";
import { ReadFrame, TypingClientFrame, TypingFrame } from "../features/presence/model.ts";
import { MessageDeletedFrame, MessageUpdatedFrame, ReactionAddedFrame, ReactionRemovedFrame } from "../features/relations/model.ts";
import { PinView } from "../features/pins/model.ts";
import { ResumeClientFrame, ResumedFrame, ResyncRequiredFrame } from "./replay-model.ts";

/** Frames the server pushes on /ws/messaging/{channel_id}. Plain "ping" is answered with "pong". */
export const MessageCreatedFrame = t.Object({ type: t.Literal("message.created"), seq: t.Integer(), message: MessageView });
/** Matrix refused an accepted send for good: the message stays, with status failed and its reason. */
export const MessageFailedFrame = t.Object({ type: t.Literal("message.failed"), seq: t.Integer(), message: MessageView });
export const MemberJoinedFrame = t.Object({ type: t.Literal("member.joined"), member: MemberView });
/** kicked_by is set when someone else removed the member. */
export const MemberLeftFrame = t.Object({ type: t.Literal("member.left"), member: MemberView, kicked_by: t.Optional(t.String()) });
export const MemberUpdatedFrame = t.Object({ type: t.Literal("member.updated"), member: MemberView, updated_by: t.String() });
export const ChannelUpdatedFrame = t.Object({ type: t.Literal("channel.updated"), channel: ChannelView });
export const ChannelArchivedFrame = t.Object({ type: t.Literal("channel.archived"), channel: ChannelView });
export const MessagePinnedFrame = t.Object({ type: t.Literal("message.pinned"), pin: PinView });
export const MessageUnpinnedFrame = t.Object({
  type: t.Literal("message.unpinned"),
  message_id: t.String({ format: "uuid" }),
  matrix_event_id: t.String(),
  unpinned_by: t.String(),
});
export const ServerFrame = t.Union([
  MessageCreatedFrame,
  MessageFailedFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  MemberUpdatedFrame,
  ChannelUpdatedFrame,
  ReactionAddedFrame,
  ReactionRemovedFrame,
  MessageUpdatedFrame,
  MessageDeletedFrame,
  TypingFrame,
  ReadFrame,
  ChannelArchivedFrame,
  MessagePinnedFrame,
  MessageUnpinnedFrame,
]);
/** What broadcast takes: frames without a seq get the channel's latest seq when they are sent. */
export type ServerFrame = Static<typeof ServerFrame>;

/** What a client receives: every frame carries the channel seq it belongs to. */
export const SentFrame = t.Intersect([t.Union([ServerFrame, ResumedFrame, ResyncRequiredFrame]), t.Object({ seq: t.Integer() })]);
export type SentFrame = Static<typeof SentFrame>;

/** JSON frames a client may send (besides the plain-text "ping"). */
export const ClientFrame = t.Union([TypingClientFrame, ResumeClientFrame]);
export type ClientFrame = Static<typeof ClientFrame>;

export const WsParams = t.Object({ channel_id: t.String({ format: "uuid" }) });
export const WsQuery = t.Object({
  user_id: t.Optional(t.String({ description: "AUTH_MODE=dev: identity for browsers, which cannot set X-User-Id on a WebSocket." })),
  access_token: t.Optional(t.String({ description: "AUTH_MODE=jwt: the Bearer token, when the `bearer` subprotocol cannot carry it." })),
  since_seq: t.Optional(t.String({ description: "Replay every message after this seq, then go live (see WebSocket protocol)." })),
});

