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
 * How many matches are ranked: the newest ones. Ranking every match of a common word costs
 * the whole history of a big channel; like Slack and Mattermost, search looks at recent
 * matches first. The newest matches are read from messages_channel_created_idx when the word
 * is common and through the GIN index when it is rare, whichever the planner finds cheaper.
 * Offset pages end at this bound.
 */
export const RANKED_MATCHES = 1000;

/**
 * Messages matching `query` in every channel the caller may read (the rule of readableChannel):
 * public channels, those where the caller is a current member with can_read, and the microdao
 * channels of the caller's microDAOs where they are no member. Thread
 * replies count; deleted messages and failed sends do not. Of the newest RANKED_MATCHES
 * matches (newest by created_at, then id), best match first; ties newest first, then by id,
 * so offset pages are stable while nothing new arrives.
 */
export async function searchMessages(sql: Sql, f: SearchFilter): Promise<RankedRow[]> {
  return sql<RankedRow[]>`
    with newest_matches as (
      select m.*
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
      order by m.created_at desc, m.id desc
      limit ${RANKED_MATCHES}
    )
    select m.*, ts_rank(m.search_vector, websearch_to_tsquery('simple', ${f.query}))::float8 as rank
    from newest_matches m
    order by rank desc, m.created_at desc, m.id desc
    limit ${f.limit} offset ${f.offset}`;
}
