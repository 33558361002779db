import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MessageReadEvent } from "../features/presence/model.ts";

/** NATS subjects and payloads. The seed's fields are kept; event_id makes every event unique. */
export const Subjects = {
  messageCreated: "messaging.message.created",
  channelCreated: "messaging.channel.created",
  memberInvited: "messaging.member.invited",
  messageRead: "messaging.message.read",
  reactionAdded: "messaging.reaction.added",
  reactionRemoved: "messaging.reaction.removed",
  messageUpdated: "messaging.message.updated",
  messageDeleted: "messaging.message.deleted",
} as const;

export const MessageCreatedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
  seq: t.Integer(),
  matrix_event_id: t.String(),
  microdao_id: t.String(),
  sender_id: t.String(),
  sender_type: t.Union([t.Literal("human"), t.Literal("agent")]),
  preview: t.String(),
  thread_id: t.Nullable(t.String({ format: "uuid" })),
  created_at: t.String({ format: "date-time" }),
});

export const ChannelCreatedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  microdao_id: t.String(),
  matrix_room_id: t.String(),
  created_by: t.String(),
});

export const MemberInvitedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  invited_by: t.String(),
  role: t.String(),
});

const ReactionFields = {
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
  matrix_event_id: t.String({ description: "The m.reaction event" }),
  reactor_id: t.String(),
  reactor_type: t.Union([t.Literal("human"), t.Literal("agent")]),
  emoji: t.String(),
};
export const ReactionAddedEvent = t.Object({ ...ReactionFields, created_at: t.String({ format: "date-time" }) });
export const ReactionRemovedEvent = t.Object({ ...ReactionFields, removed_at: t.String({ format: "date-time" }) });

export const MessageUpdatedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
  seq: t.Integer(),
  matrix_event_id: t.String({ description: "The m.replace event" }),
  editor_id: t.String(),
  version: t.Integer({ description: "The new version; 1 is the original" }),
  preview: t.String(),
  edited_at: t.String({ format: "date-time" }),
});

export const MessageDeletedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
  seq: t.Integer(),
  matrix_event_id: t.String({ description: "The m.room.redaction event" }),
  deleted_by: t.String(),
  deleted_at: t.String({ format: "date-time" }),
});

export type EventPayloads = {
  [Subjects.messageCreated]: Static<typeof MessageCreatedEvent>;
  [Subjects.channelCreated]: Static<typeof ChannelCreatedEvent>;
  [Subjects.memberInvited]: Static<typeof MemberInvitedEvent>;
  [Subjects.messageRead]: Static<typeof MessageReadEvent>;
  [Subjects.reactionAdded]: Static<typeof ReactionAddedEvent>;
  [Subjects.reactionRemoved]: Static<typeof ReactionRemovedEvent>;
  [Subjects.messageUpdated]: Static<typeof MessageUpdatedEvent>;
  [Subjects.messageDeleted]: Static<typeof MessageDeletedEvent>;
};
export type Subject = keyof EventPayloads;
