import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { RightFlags } from "../domain/member-rights.ts";
import { LinkPreviewView } from "../wire/link-preview.ts";


/** NATS subjects and payloads. The seed's fields are kept; event_id makes every event unique. */
export const Subjects = {
  messageCreated: "messaging.message.created",
  messageFailed: "messaging.message.failed",
  channelCreated: "messaging.channel.created",
  memberInvited: "messaging.member.invited",
  messageRead: "messaging.message.read",
  typing: "messaging.typing",
  reactionAdded: "messaging.reaction.added",
  reactionRemoved: "messaging.reaction.removed",
  messageUpdated: "messaging.message.updated",
  messageDeleted: "messaging.message.deleted",
  memberJoined: "messaging.member.joined",
  memberLeft: "messaging.member.left",
  memberKicked: "messaging.member.kicked",
  memberUpdated: "messaging.member.updated",
  messagePinned: "messaging.message.pinned",
  messageUnpinned: "messaging.message.unpinned",
  channelUpdated: "messaging.channel.updated",
  channelArchived: "messaging.channel.archived",
  agentMentioned: "messaging.agent.mentioned",
  callUpdated: "messaging.call.updated",
  spaceChildReported: "messaging.space.child_reported",
} as const;

/** Where a change came from: this service's API, or a Matrix client. */
const Via = t.Union([t.Literal("api"), t.Literal("matrix")]);

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

export const MessageFailedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
  seq: t.Integer(),
  sender_id: t.String(),
  reason: t.String(),
  failed_at: t.String({ format: "date-time" }),
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
  event_id: t.String({ description: "message.updated:{m.replace event id} for an edit; message.updated:link_preview:{message_id}:{version}:{url hash} for a link preview" }),
  channel_id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
  seq: t.Integer(),
  matrix_event_id: t.String({ description: "The m.replace event of an edit; the message's own event when its link preview arrives" }),
  editor_id: t.String({ description: "Who edited it; system:link-preview when its link preview arrives" }),
  version: t.Integer({ description: "The version it describes; 1 is the original" }),
  preview: t.String(),
  edited_at: t.String({ format: "date-time", description: "When that version was written (the message's own time for a link preview of a message never edited)" }),
  change: t.Union([t.Literal("edit"), t.Literal("link_preview")], { description: "edit: a new version of the text; link_preview: the preview of its first link arrived" }),
  link_preview: t.Nullable(LinkPreviewView, { description: "The message's link preview after the change (an edit to another link drops the old one at once)" }),
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

export const MemberJoinedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  role: t.String(),
  via: Via,
});

export const MemberLeftEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  via: Via,
});

export const MemberKickedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  kicked_by: t.String(),
  via: Via,
});

export const MemberUpdatedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  updated_by: t.String(),
  role: t.String(),
  previous_role: t.String(),
  ...RightFlags,
  matrix_power_level: t.Integer(),
  via: Via,
});

export const MessagePinnedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
  matrix_event_id: t.String(),
  pinned_by: t.String(),
  via: Via,
});

export const MessageUnpinnedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  message_id: t.String({ format: "uuid" }),
  matrix_event_id: t.String(),
  unpinned_by: t.String(),
  via: Via,
});

export const ChannelUpdatedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  microdao_id: t.String(),
  updated_by: t.String(),
  fields: t.Array(t.String()),
  via: Via,
});

export const ChannelArchivedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  microdao_id: t.String(),
  archived_by: t.String(),
  archived_at: t.String({ format: "date-time" }),
});

/** An agent was mentioned in a message: one event per mentioned agent, so it can answer without reading every message. */
export const AgentMentionedEvent = t.Object({
  event_id: t.String({ description: "agent.mentioned:{message_id}:{agent_id}, the same however often the message is indexed" }),
  agent_id: t.String({ description: "The mentioned agent, e.g. agent:sofia" }),
  channel_id: t.String({ format: "uuid" }),
  microdao_id: t.String(),
  message_id: t.String({ format: "uuid" }),
  seq: t.Integer(),
  matrix_event_id: t.String(),
  sender_id: t.String(),
  sender_type: t.Union([t.Literal("human"), t.Literal("agent")]),
  preview: t.String({ description: "As in message.created: empty in a confidential (encrypted) channel" }),
  thread_id: t.Nullable(t.String({ format: "uuid" })),
  mentions: t.Array(t.String(), { description: "Every member the message mentions" }),
  created_at: t.String({ format: "date-time" }),
});

/** A Matrix user made a room that is not a channel a child of a microDAO's space (or group): reported, never indexed. */
export const SpaceChildReportedEvent = t.Object({
  event_id: t.String({ description: "space.child_reported:{matrix event id of the m.space.child}" }),
  microdao_id: t.String(),
  space_room_id: t.String({ description: "The space (or group) room that holds the m.space.child" }),
  room_id: t.String({ description: "The child room, which is no channel" }),
  added_by: t.String({ description: "The Matrix user who sent the m.space.child" }),
  via: t.Array(t.String()),
  order: t.Nullable(t.String()),
  matrix_event_id: t.String(),
});

/** Who types in a channel now, whenever that changes (typing is short-lived: not for replay). */
export const TypingChangedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  user_ids: t.Array(t.String()),
  at: t.String({ format: "date-time" }),
});

export const MessageReadEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  last_read_seq: t.Integer(),
  last_read_message_id: t.Nullable(t.String({ format: "uuid" })),
  last_read_event_id: t.Nullable(t.String()),
  read_at: t.String({ format: "date-time" }),
});

/** A channel's call state changed: who is in a call now (see GET …/channels/{id}/call for the whole view). */
export const CallUpdatedEvent = t.Object({
  event_id: t.String(),
  channel_id: t.String({ format: "uuid" }),
  microdao_id: t.String(),
  active: t.Boolean(),
  participant_count: t.Integer(),
  member_ids: t.Array(t.String()),
  since: t.Nullable(t.String({ format: "date-time" })),
  legacy_calls: t.Array(
    t.Object({
      call_id: t.String(),
      state: t.Union([t.Literal("ringing"), t.Literal("active"), t.Literal("ended")]),
      caller_id: t.Nullable(t.String()),
      callee_id: t.Nullable(t.String()),
    }),
  ),
  updated_at: t.String({ format: "date-time" }),
});

export type EventPayloads = {
  [Subjects.messageCreated]: Static<typeof MessageCreatedEvent>;
  [Subjects.messageFailed]: Static<typeof MessageFailedEvent>;
  [Subjects.channelCreated]: Static<typeof ChannelCreatedEvent>;
  [Subjects.memberInvited]: Static<typeof MemberInvitedEvent>;
  [Subjects.messageRead]: Static<typeof MessageReadEvent>;
  [Subjects.typing]: Static<typeof TypingChangedEvent>;
  [Subjects.reactionAdded]: Static<typeof ReactionAddedEvent>;
  [Subjects.reactionRemoved]: Static<typeof ReactionRemovedEvent>;
  [Subjects.messageUpdated]: Static<typeof MessageUpdatedEvent>;
  [Subjects.messageDeleted]: Static<typeof MessageDeletedEvent>;
  [Subjects.memberJoined]: Static<typeof MemberJoinedEvent>;
  [Subjects.memberLeft]: Static<typeof MemberLeftEvent>;
  [Subjects.memberKicked]: Static<typeof MemberKickedEvent>;
  [Subjects.memberUpdated]: Static<typeof MemberUpdatedEvent>;
  [Subjects.messagePinned]: Static<typeof MessagePinnedEvent>;
  [Subjects.messageUnpinned]: Static<typeof MessageUnpinnedEvent>;
  [Subjects.channelUpdated]: Static<typeof ChannelUpdatedEvent>;
  [Subjects.channelArchived]: Static<typeof ChannelArchivedEvent>;
  [Subjects.agentMentioned]: Static<typeof AgentMentionedEvent>;
  [Subjects.callUpdated]: Static<typeof CallUpdatedEvent>;
  [Subjects.spaceChildReported]: Static<typeof SpaceChildReportedEvent>;
};
export type Subject = keyof EventPayloads;
