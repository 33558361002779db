import type { Sql, Tx } from "./db.ts";
import type { SenderType } from "../domain/ids.ts";

export interface ReactionRow {
  id: string;
  message_id: string;
  reactor_id: string;
  reactor_type: SenderType;
  emoji: string;
  matrix_event_id: string;
  created_at: Date;
  removed_at: Date | null;
}

export async function reactionCount(sql: Sql | Tx, messageId: string, emoji: string): Promise<number> {
  const [row] = await sql`
    select count(*)::int as n from message_reactions where message_id = ${messageId} and emoji = ${emoji} and removed_at is null`;
  return Number(row?.n ?? 0);
}

export async function findReaction(sql: Sql | Tx, messageId: string, reactorId: string, emoji: string): Promise<ReactionRow | null> {
  const [row] = await sql<ReactionRow[]>`
    select * from message_reactions where message_id = ${messageId} and reactor_id = ${reactorId} and emoji = ${emoji}`;
  return row ?? null;
}

export async function findReactionByEvent(sql: Sql | Tx, eventId: string): Promise<ReactionRow | null> {
  const [row] = await sql<ReactionRow[]>`select * from message_reactions where matrix_event_id = ${eventId}`;
  return row ?? null;
}

/**
 * Adds the reaction, or brings a removed one back with its new event. Returns null when the
 * member already has that reaction (one per member per emoji).
 */
export async function upsertReaction(
  sql: Sql | Tx,
  r: { message_id: string; reactor_id: string; reactor_type: SenderType; emoji: string; matrix_event_id: string; created_at: Date },
): Promise<ReactionRow | null> {
  const [row] = await sql<ReactionRow[]>`
    insert into message_reactions (message_id, reactor_id, reactor_type, emoji, matrix_event_id, created_at)
    values (${r.message_id}, ${r.reactor_id}, ${r.reactor_type}, ${r.emoji}, ${r.matrix_event_id}, ${r.created_at})
    on conflict (message_id, reactor_id, emoji) do update
      set matrix_event_id = excluded.matrix_event_id, created_at = excluded.created_at, removed_at = null
      where message_reactions.removed_at is not null
    returning *`;
  return row ?? null;
}

export async function markReactionRemoved(sql: Sql | Tx, id: string): Promise<ReactionRow | null> {
  const [row] = await sql<ReactionRow[]>`
    update message_reactions set removed_at = now() where id = ${id} and removed_at is null returning *`;
  return row ?? null;
}
