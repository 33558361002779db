import type postgres from "postgres";
import type { Sql, Tx } from "./db.ts";
import type { MessageRow } from "./rows.ts";
import type { ReactionSummary } from "../wire/reaction-summary.ts";

export interface ThreadStats {
  reply_count: number;
  last_reply_at: Date | null;
}

/** What a message view shows besides its row: its thread's replies, and its reactions (`me` for the caller). */
export interface MessageExtras {
  threads: Map<string, ThreadStats>;
  reactions: Map<string, ReactionSummary[]>;
}

type ExtrasColumns = { reply_count: number; last_reply_at: Date | null; reactions: ReactionSummary[] };

/*
 * Both laterals read the message `m` of the query around them: the live replies of its thread
 * (messages_thread_seq_live_idx), and each emoji once, in the order it was first used.
 */
function threadOf(sql: Sql | Tx) {
  return sql`
    select count(*)::int as reply_count, max(r.created_at) as last_reply_at from messages r
    where r.thread_id = m.id and r.deleted_at is null and r.delivery_state <> 'failed'`;
}

function reactionsOf(sql: Sql | Tx, callerId: string | null) {
  return sql`
    select coalesce(json_agg(json_build_object('emoji', x.emoji, 'count', x.count, 'me', x.me) order by x.first_at, x.emoji), '[]') as reactions
    from (
      select emoji, count(*)::int as count, coalesce(bool_or(reactor_id = ${callerId}), false) as me, min(created_at) as first_at
      from message_reactions where message_id = m.id and removed_at is null
      group by emoji
    ) x`;
}

function collect<T extends { id: string } & ExtrasColumns>(rows: readonly T[]): MessageExtras {
  const extras: MessageExtras = { threads: new Map(), reactions: new Map() };
  for (const row of rows) {
    if (row.reply_count > 0) extras.threads.set(row.id, { reply_count: row.reply_count, last_reply_at: row.last_reply_at });
    if (row.reactions.length > 0) extras.reactions.set(row.id, row.reactions);
  }
  return extras;
}

/**
 * A page of messages (the query, newest first) read with its extras in one statement: one
 * round trip instead of the page's, then the thread counts' and the reactions'.
 */
export async function pageWithExtras(
  sql: Sql,
  page: postgres.PendingQuery<MessageRow[]>,
  callerId: string | null,
): Promise<{ messages: MessageRow[] } & MessageExtras> {
  const rows = await sql<(MessageRow & ExtrasColumns)[]>`
    select m.*, t.reply_count, t.last_reply_at, rx.reactions
    from (${page}) m
    cross join lateral (${threadOf(sql)}) t
    cross join lateral (${reactionsOf(sql, callerId)}) rx
    order by m.seq desc`;
  const messages = rows.map(({ reply_count: _count, last_reply_at: _last, reactions: _reactions, ...row }) => row as MessageRow);
  return { messages, ...collect(rows) };
}

/** The extras of messages already read (a replay, one message), in one statement. */
export async function extrasOf(sql: Sql | Tx, ids: string[], callerId: string | null): Promise<MessageExtras> {
  if (ids.length === 0) return { threads: new Map(), reactions: new Map() };
  const rows = await sql<({ id: string } & ExtrasColumns)[]>`
    select m.id, t.reply_count, t.last_reply_at, rx.reactions
    from unnest(${ids}::uuid[]) as m(id)
    cross join lateral (${threadOf(sql)}) t
    cross join lateral (${reactionsOf(sql, callerId)}) rx`;
  return collect(rows);
}
