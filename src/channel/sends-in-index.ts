import { Subjects } from "../events/model.ts";
import { isNotPlainSend, type OutgoingEvent, type SendsInIndexStatement } from "../matrix/port.ts";
import type { Sql } from "../store/db.ts";
import type { QueuedEvent } from "../store/event-outbox.ts";
import { submitTogether } from "../store/group-commit.ts";
import { insertMessages, rowAsWritten, type NewMessage } from "../store/messages.ts";
import type { MessageRow } from "../store/rows.ts";
import { messageCreatedEvent } from "./announce.ts";
import type { ChannelContext } from "./context.ts";
import { agentMentionedEvents } from "./mentions.ts";

/**
 * A channel's new sends (checked, seq given, nothing pending before them) written as sent,
 * with their Matrix events and their message.created and agent.mentioned events, when the
 * homeserver lives in the index's own database. Null when they must take the usual path
 * (pending row first, then Matrix): the homeserver has no such statement or is closing, the
 * channel is no longer this instance's, or the batch is not plain. Nothing was written then.
 */
export async function sendInIndex(ctx: ChannelContext, fresh: NewMessage[]): Promise<MessageRow[] | null> {
  const { matrix, sql, events, stillOwner } = ctx.deps;
  const homeserver = matrix.sendsInIndex;
  if (!homeserver?.open || (stillOwner && !stillOwner(ctx.channelId))) return null;
  for (const sender of new Set(fresh.map((m) => m.sender_matrix_id))) await matrix.ensureUser(sender);
  const createdAt = new Date();
  const messages = fresh.map((m) => ({ ...m, delivery_state: "sent" as const, matrix_event_id: homeserver.newEventId(), outbox_content: null, created_at: createdAt }));
  const created = messages.map(rowAsWritten).flatMap((row) => [{ subject: Subjects.messageCreated, payload: messageCreatedEvent(ctx, row) }, ...agentMentionedEvents(ctx, row)]);
  const room = {
    roomId: ctx.room,
    events: fresh.map((m) => ({ asUser: m.sender_matrix_id, type: "m.room.message", content: m.outbox_content ?? {}, txnId: m.id })),
    eventIds: messages.map((m) => m.matrix_event_id),
  };
  const queued = await events.outboxRows(created);
  const begin = performance.now();
  let rows: MessageRow[];
  try {
    rows = await sendInIndexTogether(sql, { homeserver, messages, events: queued, room });
  } catch (err) {
    if (isNotPlainSend(err)) return null;
    throw err;
  }
  // Counted as the Matrix send it is, beside the sends that go through the port's sendEvents.
  ctx.deps.metrics?.matrixCall("sendEvents", "ok", (performance.now() - begin) / 1000);
  events.queued(created);
  return rows;
}

/** One channel's batch: its rows (already `sent`, with their event ids), their NATS events, and the events for its room. */
export interface InIndexSend {
  homeserver: SendsInIndexStatement;
  messages: NewMessage[];
  events: QueuedEvent[] | null;
  room: { roomId: string; events: OutgoingEvent[]; eventIds: string[] };
}

/**
 * Writes a channel's sends, their Matrix events (the homeserver lives in this database) and
 * their outbox events in one statement, merged with other channels' at the same moment
 * (store/group-commit.ts). All of it commits, or none: a batch that is not plain rejects with
 * NOT_PLAIN_SQLSTATE and a fenced one with the fence's, and nothing of it is written.
 */
export function sendInIndexTogether(sql: Sql, send: InIndexSend): Promise<MessageRow[]> {
  return submitTogether(sql, sendInIndexMerged, send);
}

async function sendInIndexMerged(sql: Sql, sends: readonly InIndexSend[]): Promise<MessageRow[][]> {
  const { homeserver } = sends[0]!;
  const rows = await insertMessages(
    sql,
    sends.flatMap((s) => s.messages),
    { events: sends.flatMap((s) => s.events ?? []), alongside: homeserver.ctes(sql, sends.map((s) => s.room)) },
  );
  homeserver.committed();
  const byId = new Map(rows.map((row) => [row.id, row]));
  return sends.map((s) => s.messages.map((m) => byId.get(m.id)!));
}
