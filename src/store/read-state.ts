import type { Sql, Tx } from "./db.ts";

export interface ReadStateRow {
  channel_id: string;
  member_id: string;
  last_read_seq: string; // bigint
  last_read_event_id: string | null;
  updated_at: Date;
}

export async function findReadState(sql: Sql | Tx, channelId: string, memberId: string): Promise<ReadStateRow | null> {
  const [row] = await sql<ReadStateRow[]>`
    select * from channel_read_state where channel_id = ${channelId} and member_id = ${memberId}`;
  return row ?? null;
}

/** Moves the read position forward; returns the new row, or null if it was already there or further. */
export async function advanceReadState(
  sql: Sql | Tx,
  r: { channel_id: string; member_id: string; seq: number; event_id: string | null },
): Promise<ReadStateRow | null> {
  const [row] = await sql<ReadStateRow[]>`
    insert into channel_read_state (channel_id, member_id, last_read_seq, last_read_event_id)
    values (${r.channel_id}, ${r.member_id}, ${r.seq}, ${r.event_id})
    on conflict (channel_id, member_id) do update
      set last_read_seq = excluded.last_read_seq, last_read_event_id = excluded.last_read_event_id, updated_at = now()
      where channel_read_state.last_read_seq < excluded.last_read_seq
    returning *`;
  return row ?? null;
}

/**
 * Unread messages per channel for one caller: others' messages after the caller's read
 * position, neither deleted nor failed. A member who never read counts from when they joined;
 * a channel the caller is not a member of counts none.
 */
export async function unreadCounts(sql: Sql | Tx, memberId: string, channelIds: string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (channelIds.length === 0) return counts;
  const rows = await sql<{ channel_id: string; n: number }[]>`
    select m.channel_id, count(msg.id)::int as n
    from channel_members m
    left join channel_read_state r on r.channel_id = m.channel_id and r.member_id = m.member_id
    join messages msg on msg.channel_id = m.channel_id
      and msg.seq > coalesce(r.last_read_seq, 0)
      and (r.member_id is not null or msg.created_at >= m.joined_at)
      and msg.deleted_at is null and msg.delivery_state <> 'failed'
      and msg.sender_id <> ${memberId}
    where m.member_id = ${memberId} and m.left_at is null and m.channel_id = any(${channelIds}::uuid[])
    group by m.channel_id`;
  for (const r of rows) counts.set(r.channel_id, r.n);
  return counts;
}
