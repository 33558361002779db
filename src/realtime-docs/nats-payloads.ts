import type { TSchema } from "@sinclair/typebox";
import * as events from "../events/model.ts";
import { Subjects, type EventPayloads, type Subject } from "../events/model.ts";
import { MessageReadEvent, TypingChangedEvent } from "../events/model.ts";

/**
 * The payload model of every subject. The type says each model's values are the subject's
 * EventPayloads entry, so a subject added to src/events/model.ts without its model here, or
 * given the wrong one, fails the type check.
 */
export const SUBJECT_PAYLOADS: { [S in Subject]: TSchema & { static: EventPayloads[S] } } = {
  [Subjects.messageCreated]: events.MessageCreatedEvent,
  [Subjects.messageFailed]: events.MessageFailedEvent,
  [Subjects.channelCreated]: events.ChannelCreatedEvent,
  [Subjects.memberInvited]: events.MemberInvitedEvent,
  [Subjects.messageRead]: MessageReadEvent,
  [Subjects.typing]: TypingChangedEvent,
  [Subjects.reactionAdded]: events.ReactionAddedEvent,
  [Subjects.reactionRemoved]: events.ReactionRemovedEvent,
  [Subjects.messageUpdated]: events.MessageUpdatedEvent,
  [Subjects.messageDeleted]: events.MessageDeletedEvent,
  [Subjects.memberJoined]: events.MemberJoinedEvent,
  [Subjects.memberLeft]: events.MemberLeftEvent,
  [Subjects.memberKicked]: events.MemberKickedEvent,
  [Subjects.memberUpdated]: events.MemberUpdatedEvent,
  [Subjects.messagePinned]: events.MessagePinnedEvent,
  [Subjects.messageUnpinned]: events.MessageUnpinnedEvent,
  [Subjects.channelUpdated]: events.ChannelUpdatedEvent,
  [Subjects.channelArchived]: events.ChannelArchivedEvent,
  [Subjects.agentMentioned]: events.AgentMentionedEvent,
  [Subjects.callUpdated]: events.CallUpdatedEvent,
  [Subjects.spaceChildReported]: events.SpaceChildReportedEvent,
};

/** What each subject announces, for the document. */
export const SUBJECT_SUMMARIES: { [S in Subject]: string } = {
  [Subjects.messageCreated]: "A message was indexed (sent through the API, by an agent, or from a Matrix client)",
  [Subjects.messageFailed]: "Matrix refused an accepted send for good; the message keeps its seq with status failed",
  [Subjects.channelCreated]: "A channel and its Matrix room were created",
  [Subjects.memberInvited]: "A member was invited",
  [Subjects.messageRead]: "A member's read position moved forward (API or Matrix read receipt)",
  [Subjects.typing]: "The set of members typing in a channel changed (short-lived: act on the latest only)",
  [Subjects.reactionAdded]: "A reaction was added",
  [Subjects.reactionRemoved]: "A reaction was removed (redacted)",
  [Subjects.messageUpdated]: "A message changed: edited (change edit, a new version), or the preview of its first link arrived (change link_preview)",
  [Subjects.messageDeleted]: "A message was deleted (redacted)",
  [Subjects.memberJoined]: "A member joined",
  [Subjects.memberLeft]: "A member left",
  [Subjects.memberKicked]: "A member was kicked",
  [Subjects.memberUpdated]: "A member's role or capabilities changed",
  [Subjects.messagePinned]: "A message was pinned",
  [Subjects.messageUnpinned]: "A message was unpinned",
  [Subjects.channelUpdated]: "A channel's name, description, topic or visibility changed",
  [Subjects.channelArchived]: "A channel was archived",
  [Subjects.agentMentioned]: "An agent was mentioned in a message (m.mentions, or @agent:x in a send): one event per mentioned agent",
  [Subjects.callUpdated]: "A channel's call state changed (MatrixRTC memberships or a legacy 1:1 call, from Matrix)",
  [Subjects.spaceChildReported]: "A Matrix user added a room that is not a channel to a microDAO's space (or a group of it): reported, not indexed as a channel",
};
