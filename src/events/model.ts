import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MessageReadEvent } from "../features/presence/model.ts";

/** NATS subjects and payloads. The seed's fields are kept; event_id makes every event unique. */
export const Subjects = {
  messageCreated: "messaging.message.created",
  channelCreated: "messaging.channel.created",
  memberInvited: "messaging.member.invited",
  messageRead: "messaging.message.read",
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

export type EventPayloads = {
  [Subjects.messageCreated]: Static<typeof MessageCreatedEvent>;
  [Subjects.channelCreated]: Static<typeof ChannelCreatedEvent>;
  [Subjects.memberInvited]: Static<typeof MemberInvitedEvent>;
  [Subjects.messageRead]: Static<typeof MessageReadEvent>;
};
export type Subject = keyof EventPayloads;
