import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { ChannelView, MemberView, MessageView, PinView } from "./views.ts";
import { CallView } from "./calls.ts";

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
// WebSocket frames (added to the ServerFrame union).
export const ReactionAddedFrame = t.Object({
  type: t.Literal("reaction.added"),
  message_id: t.String({ format: "uuid" }),
  emoji: t.String(),
  reactor_id: t.String(),
  count: t.Integer({ description: "Reactions with this emoji on the message, after the change" }),
});
export const ReactionRemovedFrame = t.Object({
  type: t.Literal("reaction.removed"),
  message_id: t.String({ format: "uuid" }),
  emoji: t.String(),
  reactor_id: t.String(),
  count: t.Integer(),
});
export const MessageUpdatedFrame = t.Object({
  type: t.Literal("message.updated"),
  seq: t.Integer(),
  message: MessageView,
});
export const MessageDeletedFrame = t.Object({
  type: t.Literal("message.deleted"),
  seq: t.Integer(),
  message_id: t.String({ format: "uuid" }),
  deleted_by: t.String(),
  deleted_at: t.String({ format: "date-time" }),
});

/** Everyone typing in the channel now (the whole list each time, as Matrix's m.typing has it). */
export const TypingFrame = t.Object({
  type: t.Literal("typing"),
  user_ids: t.Array(t.String(), { examples: [["user:alice", "matrix:@bob:daarion.city"]] }),
});
export type TypingFrame = Static<typeof TypingFrame>;

/** A member's read position moved forward (from the API or a Matrix read receipt). */
export const ReadFrame = t.Object({
  type: t.Literal("read"),
  member_id: t.String(),
  last_read_seq: t.Integer(),
  last_read_message_id: t.Nullable(t.String({ format: "uuid" })),
  last_read_event_id: t.Nullable(t.String()),
  updated_at: t.String({ format: "date-time" }),
});
export type ReadFrame = Static<typeof ReadFrame>;

/** The channel's call state changed (someone joined or left a call, a membership expired, a legacy call rang, was answered or ended). */
export const CallUpdatedFrame = t.Object({ type: t.Literal("call.updated"), call: CallView });

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
  CallUpdatedFrame,
]);
/** What broadcast takes: frames without a seq get the channel's latest seq when they are sent. */
export type ServerFrame = Static<typeof ServerFrame>;
