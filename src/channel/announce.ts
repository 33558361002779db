import { Subjects, type EventPayloads } from "../events/model.ts";
import type { MemberRow, MessageRow } from "../store/rows.ts";
import { toMemberView, toMessageView } from "../store/views.ts";
import type { ChannelContext } from "./context.ts";

/** The messaging.message.created event of a message in Matrix. */
export function messageCreatedEvent(ctx: ChannelContext, row: MessageRow): EventPayloads[typeof Subjects.messageCreated] {
  const view = toMessageView(row);
  return {
    event_id: `message.created:${row.id}`,
    channel_id: row.channel_id,
    message_id: row.id,
    seq: view.seq,
    matrix_event_id: row.matrix_event_id!,
    microdao_id: ctx.channel.microdao_id,
    sender_id: row.sender_id,
    sender_type: row.sender_type,
    preview: row.content_preview,
    thread_id: row.thread_id,
    created_at: view.created_at,
  };
}

/**
 * A message in Matrix: message.created (message.updated for those who saw it pending) and its
 * NATS event, unless the caller queued that already (`eventQueued`).
 */
export function announceMessage(ctx: ChannelContext, row: MessageRow, wasAnnouncedPending = false, eventQueued = false): Promise<void> {
  const view = toMessageView(row);
  const frame = { type: wasAnnouncedPending ? ("message.updated" as const) : ("message.created" as const), seq: view.seq, message: view };
  return eventQueued ? ctx.announce(frame) : ctx.announce(frame, Subjects.messageCreated, messageCreatedEvent(ctx, row));
}

/** A member joined (a first write, or a join made in Matrix). */
export function announceJoin(ctx: ChannelContext, member: MemberRow, via: "api" | "matrix"): Promise<void> {
  return ctx.announce({ type: "member.joined", member: toMemberView(member) }, Subjects.memberJoined, {
    event_id: `member.joined:${member.id}:${member.joined_at.getTime()}`,
    channel_id: ctx.channelId,
    member_id: member.member_id,
    role: member.role,
    via,
  });
}
