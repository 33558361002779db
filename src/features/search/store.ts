import type { Sql } from "../../store/db.ts";
import type { MessageRow } from "../../store/rows.ts";

export interface SearchFilter {
  callerId: string;
  /** The microDAOs the caller's token lists: their microdao channels are readable. */
  callerMicrodaos: readonly string[];
  query: string;
  channelId: string | null;
  senderId: string | null;
  limit: number;
  offset: number;
}

export type RankedRow = MessageRow & { rank: number };

/**
 * Messages matching `query` in every channel the caller may read (the rule of readableChannel):
 * public channels, those where the caller is a current member with can_read, and the microdao
 * channels of the caller's microDAOs where they are no member. Thread
 * replies count; deleted messages and failed sends do not. Best match first; ties newest first,
 * then by id, so offset pages are stable while nothing new arrives.
 */
export async function searchMessages(sql: Sql, f: SearchFilter): Promise<RankedRow[]> {
  return sql<RankedRow[]>`
    select m.*, ts_rank(m.search_vector, q.query)::float8 as rank
    from websearch_to_tsquery('simple', ${f.query}) as q(query)
    join messages m on m.search_vector @@ q.query
    join channels c on c.id = m.channel_id
    left join channel_members cm on cm.channel_id = c.id and cm.member_id = ${f.callerId} and cm.left_at is null
    where m.deleted_at is null
      and not c.is_encrypted
      and m.delivery_state <> 'failed'
      and (${f.channelId}::uuid is null or m.channel_id = ${f.channelId}::uuid)
      and (${f.senderId}::text is null or m.sender_id = ${f.senderId}::text)
      and (
        c.visibility = 'public' or cm.can_read
        or (cm.id is null and c.visibility = 'microdao' and c.microdao_id = any(${sql.array([...f.callerMicrodaos])}::text[]))
      )
    order by rank desc, m.created_at desc, m.id desc
    limit ${f.limit} offset ${f.offset}`;
}
