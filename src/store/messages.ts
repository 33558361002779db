import type { Fragment, Sql, Tx } from "./db.ts";
import type { MessageRow } from "./rows.ts";
import type { SenderType } from "../domain/ids.ts";
import type { MediaColumns, VoiceColumns } from "./rows.ts";
import { queueEventsStatement, type QueuedEvent } from "./event-outbox.ts";
import { submitTogether } from "./group-commit.ts";
import { previewJobsStatement, type PreviewColumns } from "./link-previews.ts";

export async function findMessage(sql: Sql | Tx, channelId: string, id: string): Promise<MessageRow | null> {
  const [row] = await sql<MessageRow[]>`select * from messages where channel_id = ${channelId} and id = ${id}`;
  return row ?? null;
}

export async function findMessageByEvent(sql: Sql | Tx, eventId: string): Promise<MessageRow | null> {
  const [row] = await sql<MessageRow[]>`select * from messages where matrix_event_id = ${eventId}`;
  return row ?? null;
}

export async function lastSeq(sql: Sql | Tx, channelId: string): Promise<number> {
  const [row] = await sql`select coalesce(max(seq), 0)::bigint as seq from messages where channel_id = ${channelId}`;
  return Number(row?.seq ?? 0);
}

export async function pendingMessages(sql: Sql, channelId: string): Promise<MessageRow[]> {
  return sql<MessageRow[]>`
    select * from messages where channel_id = ${channelId} and delivery_state = 'pending' order by seq`;
}

/** Channels with sends still pending (partial index), so their actors can be started to deliver them. */
export async function channelsWithPendingSends(sql: Sql): Promise<string[]> {
  const rows = await sql<{ channel_id: string }[]>`select distinct channel_id from messages where delivery_state = 'pending'`;
  return rows.map((row) => row.channel_id);
}

export interface MessagePage {
  /** Newest first. */
  beforeSeq: number | null;
  before: Date | null;
  limit: number;
}

export async function latestInThread(sql: Sql | Tx, rootId: string): Promise<MessageRow | null> {
  const [row] = await sql<MessageRow[]>`
    select * from messages where thread_id = ${rootId} and matrix_event_id is not null and deleted_at is null
    order by seq desc limit 1`;
  return row ?? null;
}

/**
 * How many of the channel's messages created just before a `before=` instant are looked at to
 * place that instant in seq order (seqBoundBefore). A message created before the instant is
 * left off the before= page only when this many messages created between it and the instant
 * were indexed before it (a Matrix sender's clock far behind, a reconcile backfill).
 */
export const BEFORE_LOOKBACK = 100;

/**
 * A thread's replies, newest first, paged by seq like the channel listing
 * (messages_thread_seq_live_idx).
 */
export function threadPage(sql: Sql, channelId: string, rootId: string, page: MessagePage) {
  return sql<MessageRow[]>`
    select * from messages
    where thread_id = ${rootId} and channel_id = ${channelId}
      and deleted_at is null and delivery_state <> 'failed'
      and (${page.beforeSeq}::bigint is null or seq < ${page.beforeSeq})
      ${createdBefore(sql, channelId, page.before)}
    order by seq desc
    limit ${page.limit}`;
}

/**
 * Newest first. Paging by seq (the cursor) is stable: seq only grows, so new arrivals never
 * shift a page. Failed sends are not part of the conversation and are left out, and so are
 * thread replies: they are listed under their root (GET …/thread), which carries their count.
 *
 * `before` (the seed's timestamp paging) is placed in seq order first (seqBoundBefore), so
 * its page is read from the seq index like a cursor page, O(page); filtering the seq index by
 * created_at from the newest message down would cost the page's depth.
 */
export function channelPage(sql: Sql, channelId: string, page: MessagePage) {
  return sql<MessageRow[]>`
    select * from messages
    where channel_id = ${channelId}
      and thread_id is null
      and deleted_at is null
      and delivery_state <> 'failed'
      and (${page.beforeSeq}::bigint is null or seq < ${page.beforeSeq})
      ${createdBefore(sql, channelId, page.before)}
    order by seq desc
    limit ${page.limit}`;
}

/**
 * The highest seq among the channel's BEFORE_LOOKBACK newest messages created before `before`
 * (messages_channel_created_idx), as a scalar subquery; null when none was. seq and created_at
 * run together except for messages indexed late, so every message created before `before`
 * has a seq at most this, bar one indexed after BEFORE_LOOKBACK younger ones: it stays listed
 * where it was indexed, on newer pages. Deleted messages, failed sends and replies count too:
 * they can only raise the bound, and the listing filters them itself.
 */
/** The `before=` condition of a page, read by seq (nothing when the page has no `before`). */
function createdBefore(sql: Sql, channelId: string, before: Date | null) {
  return before === null ? sql`` : sql`and seq <= (${seqBoundBefore(sql, channelId, before)}) and created_at < ${before}`;
}

function seqBoundBefore(sql: Sql, channelId: string, before: Date) {
  return sql`
    select max(seq) from (
      select seq from messages
      where channel_id = ${channelId} and created_at < ${before}
      order by created_at desc
      limit ${BEFORE_LOOKBACK}
    ) as newest_before`;
}

export interface NewMessage {
  id: string;
  channel_id: string;
  seq: number;
  matrix_event_id: string | null;
  matrix_type: string;
  sender_id: string;
  sender_type: SenderType;
  sender_matrix_id: string;
  sender_display_name: string | null;
  content_preview: string;
  content_type: string;
  msgtype: string | null;
  thread_id: string | null;
  reply_to: string | null;
  delivery_state: "pending" | "sent";
  outbox_content: Record<string, unknown> | null;
  created_at: Date | null;
  /** A file message's mxc URL and details. */
  media?: MediaColumns | null;
  /** A voice message's duration and waveform. */
  voice?: VoiceColumns | null;
  /** The members it mentions (member ids), written with it into message_mentions. */
  mentions?: string[];
  /** The link it wants previewed (a job is written with it unless the preview is already there, bundled by its sender). */
  preview?: PreviewColumns | null;
}

/**
 * `consumingInboxEvent`: the Matrix event this row indexes leaves the durable inbox in the same
 * statement, hence the same transaction, in one round trip. `events` are queued for NATS in it too.
 */
export async function insertMessage(sql: Sql | Tx, m: NewMessage, opts: InsertOptions = {}): Promise<MessageRow> {
  const [row] = await insertMessages(sql, [m], opts);
  return row!;
}

export interface InsertOptions {
  consumingInboxEvent?: string;
  /** Events queued in the event outbox by the same statement: both are durable, or neither. */
  events?: QueuedEvent[] | null;
  /** More CTEs of the same statement (the local homeserver's events, say): committed with the rows, or nothing is. */
  alongside?: Fragment | null;
}

/**
 * Several rows in one statement (one round trip); the answer keeps the order given. Their
 * mentions go into message_mentions in the same statement.
 */
export async function insertMessages(sql: Sql | Tx, messages: NewMessage[], opts: InsertOptions = {}): Promise<MessageRow[]> {
  if (messages.length === 0) return [];
  // A send is stamped when it is accepted.
  const now = new Date();
  const values = messages.map((m) => ({
    id: m.id,
    channel_id: m.channel_id,
    seq: m.seq,
    matrix_event_id: m.matrix_event_id,
    matrix_type: m.matrix_type,
    sender_id: m.sender_id,
    sender_type: m.sender_type,
    sender_matrix_id: m.sender_matrix_id,
    sender_display_name: m.sender_display_name,
    content_preview: m.content_preview,
    content_type: m.content_type,
    msgtype: m.msgtype,
    thread_id: m.thread_id,
    reply_to: m.reply_to,
    delivery_state: m.delivery_state,
    outbox_content: m.outbox_content ? sql.json(m.outbox_content as never) : null,
    created_at: m.created_at ?? now,
    media_url: m.media?.media_url ?? null,
    media_mimetype: m.media?.media_mimetype ?? null,
    media_size: m.media?.media_size ?? null,
    media_filename: m.media?.media_filename ?? null,
    voice_duration_ms: m.voice?.voice_duration_ms ?? null,
    voice_waveform: m.voice?.voice_waveform ? sql.array(m.voice.voice_waveform, INT4_OID) : null,
    mentions: sql.array(m.mentions ?? [], TEXT_OID),
    link_preview_url: m.preview?.link_preview_url ?? null,
    link_preview: m.preview?.link_preview ? sql.json(m.preview.link_preview as never) : null,
    link_previews_off: m.preview?.link_previews_off ?? false,
  }));
  const mentioned = messages.flatMap((m, i) =>
    (m.mentions ?? []).map((memberId) => [m.id, m.channel_id, memberId, m.seq, values[i]!.created_at.toISOString()]),
  );
  // A preview wanted is durable with the message: the job is written by the same statement.
  const previewJobs = previewJobsStatement(sql, messages.map((m) => ({ id: m.id, channel_id: m.channel_id, ...m.preview })));
  const ctes = [
    opts.consumingInboxEvent ? sql`consumed as (delete from matrix_inbox where event_id = ${opts.consumingInboxEvent})` : null,
    mentioned.length > 0
      ? sql`mentioned as (
          insert into message_mentions (message_id, channel_id, member_id, seq, created_at)
          select v.message_id::uuid, v.channel_id::uuid, v.member_id, v.seq::bigint, v.created_at::timestamptz
          from (values ${sql(mentioned)}) as v (message_id, channel_id, member_id, seq, created_at)
          on conflict (message_id, member_id) do nothing)`
      : null,
    opts.events?.length ? sql`queued as (${queueEventsStatement(sql, opts.events)})` : null,
    previewJobs ? sql`previews as (${previewJobs})` : null,
    opts.alongside ?? null,
  ].filter((cte) => cte !== null);
  const withClause = ctes.length === 0 ? sql`` : sql`with ${ctes.reduce((all, cte) => sql`${all}, ${cte}`)} `;
  // A fragment of its own: postgres.js picks what `${sql(values)}` expands to by the keywords
  // before it in the same fragment, and the CTEs' own (select, values, as) must not count.
  const insert = sql`insert into messages ${sql(values)}`;
  const rows = await sql<MessageRow[]>`${withClause}${insert} returning *`;
  return inOrder(messages, rows);
}

/** The row an INSERT of `message` answers, known before it runs (so its events can go in the same statement). */
export function rowAsWritten(message: NewMessage & { created_at: Date }): MessageRow {
  return {
    ...message,
    seq: String(message.seq),
    failure_reason: null,
    edited_at: null,
    deleted_at: null,
    media_url: message.media?.media_url ?? null,
    media_mimetype: message.media?.media_mimetype ?? null,
    media_size: message.media?.media_size == null ? null : String(message.media.media_size),
    media_filename: message.media?.media_filename ?? null,
    voice_duration_ms: message.voice?.voice_duration_ms ?? null,
    voice_waveform: message.voice?.voice_waveform ?? null,
    mentions: message.mentions ?? [],
    link_preview_url: message.preview?.link_preview_url ?? null,
    link_preview: message.preview?.link_preview ?? null,
    link_previews_off: message.preview?.link_previews_off ?? false,
  };
}

/**
 * A channel's pending sends, written in one statement with whatever other channels write at
 * the same moment (store/group-commit.ts): all of a channel's rows are written, or none.
 */
export function insertPendingMessages(sql: Sql, messages: NewMessage[]): Promise<MessageRow[]> {
  return submitTogether(sql, insertPendingMerged, messages);
}

async function insertPendingMerged(sql: Sql, jobs: readonly NewMessage[][]): Promise<MessageRow[][]> {
  const byId = new Map((await insertMessages(sql, jobs.flat())).map((row) => [row.id, row]));
  return jobs.map((job) => job.map((m) => byId.get(m.id)!));
}

/** PostgreSQL's text type, for text[] parameters that may be empty. */
const TEXT_OID = 25;
/** PostgreSQL's integer type, for the voice waveform. */
const INT4_OID = 23;

/** Matrix confirmed the event: the index keeps its id and drops the outbox copy of the content. */
export async function markSent(sql: Sql | Tx, id: string, eventId: string): Promise<MessageRow> {
  const [row] = await markAllSent(sql, [{ id, eventId }]);
  return row!;
}

/** markSent for several confirmed sends in one statement; the answer keeps the order given. */
/** `events`, when given, are queued for NATS in the same statement: both are durable, or neither. */
export async function markAllSent(sql: Sql | Tx, sent: Array<{ id: string; eventId: string }>, events: QueuedEvent[] | null = null): Promise<MessageRow[]> {
  if (sent.length === 0) return [];
  const queueing = events?.length ? sql`with queued as (${queueEventsStatement(sql, events)}) ` : sql``;
  const rows = await sql<MessageRow[]>`${queueing}
    update messages m
    set delivery_state = 'sent', matrix_event_id = v.event_id, outbox_content = null, failure_reason = null
    from (values ${sql(sent.map((s) => [s.id, s.eventId]))}) as v (id, event_id)
    where m.id = v.id::uuid
    returning m.*`;
  return inOrder(sent, rows);
}

/** markAllSent, in one statement with what other channels confirm at the same moment (store/group-commit.ts). */
export function markAllSentTogether(sql: Sql, sent: Array<{ id: string; eventId: string }>, events: QueuedEvent[] | null): Promise<MessageRow[]> {
  return submitTogether(sql, markSentMerged, { sent, events });
}

async function markSentMerged(
  sql: Sql,
  jobs: readonly { sent: Array<{ id: string; eventId: string }>; events: QueuedEvent[] | null }[],
): Promise<MessageRow[][]> {
  const rows = await markAllSent(sql, jobs.flatMap((job) => job.sent), jobs.flatMap((job) => job.events ?? []));
  const byId = new Map(rows.map((row) => [row.id, row]));
  return jobs.map((job) => job.sent.flatMap((s) => byId.get(s.id) ?? []));
}

/** Several messages of one channel by id, in one round trip. */
export async function findMessages(sql: Sql | Tx, channelId: string, ids: string[]): Promise<Map<string, MessageRow>> {
  if (ids.length === 0) return new Map();
  const rows = await sql<MessageRow[]>`select * from messages where channel_id = ${channelId} and id in ${sql(ids)}`;
  return new Map(rows.map((row) => [row.id, row]));
}

function inOrder(wanted: Array<{ id: string }>, rows: MessageRow[]): MessageRow[] {
  const byId = new Map(rows.map((row) => [row.id, row]));
  return wanted.map((w) => byId.get(w.id)).filter((row): row is MessageRow => row !== undefined);
}

/** Matrix refused it for good: the row stays (its seq too), failed, with the reason. */
export async function markFailed(sql: Sql | Tx, id: string, reason: string): Promise<MessageRow> {
  // A failed send is no message: it wants no preview.
  const [row] = await sql<MessageRow[]>`
    with unwanted as (delete from link_preview_jobs where message_id = ${id})
    update messages set delivery_state = 'failed', failure_reason = ${reason}, link_preview_url = null where id = ${id} returning *`;
  return row!;
}

/** Which of these Matrix events the index has as messages. */
export async function indexedMessageEvents(sql: Sql, eventIds: string[]): Promise<Set<string>> {
  const indexed = await sql<{ matrix_event_id: string }[]>`
        select matrix_event_id from messages where matrix_event_id = any(${eventIds}::text[])`;
  return new Set(indexed.map((r) => r.matrix_event_id));
}

/** The channel's delivered, undeleted messages by Matrix event, in seq order. */
export async function deliveredMessageEvents(sql: Sql, channelId: string): Promise<Array<{ id: string; seq: string; matrix_event_id: string }>> {
  return sql<{ id: string; seq: string; matrix_event_id: string }[]>`
    select id, seq, matrix_event_id from messages
    where channel_id = ${channelId} and delivery_state = 'sent' and deleted_at is null and matrix_event_id is not null
    order by seq`;
}

export async function messagesAfter(sql: Sql, channelId: string, afterSeq: number, limit: number): Promise<MessageRow[]> {
  // Failed sends never happened. Pending ones are replayed as pending, in their seq place, like
  // the live announcement; their confirmation follows live as message.updated.
  return sql<MessageRow[]>`
    select * from messages
    where channel_id = ${channelId} and seq > ${afterSeq} and delivery_state <> 'failed'
    order by seq
    limit ${limit}`;
}

export async function countAfter(sql: Sql, channelId: string, afterSeq: number): Promise<number> {
  const [row] = await sql`select count(*)::int as n from messages where channel_id = ${channelId} and seq > ${afterSeq} and delivery_state <> 'failed'`;
  return Number(row?.n ?? 0);
}
