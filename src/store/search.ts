import type { Sql } from "./db.ts";
import type { MessageRow } from "./rows.ts";

export interface SearchFilter {
  query: string;
  senderId: string | null;
  limit: number;
  offset: number;
}

export interface ReadableFilter extends SearchFilter {
  callerId: string;
  /** The microDAOs the caller's token lists: their microdao channels are readable. */
  callerMicrodaos: readonly string[];
}

export type RankedRow = MessageRow & { rank: number };

/**
 * How many matches are ranked: the newest ones. Ranking every match of a common word costs
 * the whole history of a big channel (tens of thousands of rows read and ranked), and chat
 * search favours recent messages anyway. Offset pages end at this bound.
 */
export const RANKED_MATCHES = 1000;

/*
 * Both searches count thread replies and leave out deleted messages and failed sends. They
 * rank the newest RANKED_MATCHES matches, best match first; ties newest first, then by id, so
 * offset pages are stable while nothing new arrives.
 */

/**
 * Matches in one channel, which the caller may read (the service checked). The newest are
 * read walking messages_channel_seq_live_idx down when the word is common, and through the GIN
 * index when it is rare, whichever the planner estimates cheaper.
 */
export async function searchChannel(sql: Sql, channelId: string, f: SearchFilter): Promise<RankedRow[]> {
  return sql<RankedRow[]>`
    with newest_matches as (
      select m.* from messages m
      where m.channel_id = ${channelId}
        and m.search_vector @@ websearch_to_tsquery('simple', ${f.query})
        and m.deleted_at is null
        and m.delivery_state <> 'failed'
        and (${f.senderId}::text is null or m.sender_id = ${f.senderId}::text)
      order by m.seq desc
      limit ${RANKED_MATCHES}
    )
    select m.*, ts_rank(m.search_vector, websearch_to_tsquery('simple', ${f.query}))::float8 as rank
    from newest_matches m
    order by rank desc, m.created_at desc, m.id desc
    limit ${f.limit} offset ${f.offset}`;
}

/**
 * Matches in every channel the caller may read (the rule of readableChannel): public channels,
 * those where the caller is a current member with can_read, and the microdao channels of the
 * caller's microDAOs where they are no member. Confidential channels are skipped. Newest is by
 * created_at, the only order across channels: a common word is read walking
 * messages_live_created_idx down until the newest matches are found, a rare one through the
 * GIN index, whichever the planner estimates cheaper. The readable channels are a hashed set
 * the walk checks each row against, so the walk keeps its order.
 */
export async function searchReadable(sql: Sql, f: ReadableFilter): Promise<RankedRow[]> {
  return sql<RankedRow[]>`
    with readable as (
      select c.id from channels c
      left join channel_members cm on cm.channel_id = c.id and cm.member_id = ${f.callerId} and cm.left_at is null
      where not c.is_encrypted
        and (
          c.visibility = 'public' or cm.can_read
          or (cm.id is null and c.visibility = 'microdao' and c.microdao_id = any(${sql.array([...f.callerMicrodaos])}::text[]))
        )
    ), newest_matches as (
      select m.*
      from websearch_to_tsquery('simple', ${f.query}) as q(query)
      join messages m on m.search_vector @@ q.query
      where m.channel_id in (select id from readable)
        and m.deleted_at is null
        and m.delivery_state <> 'failed'
        and (${f.senderId}::text is null or m.sender_id = ${f.senderId}::text)
      order by m.created_at desc, m.id desc
      limit ${RANKED_MATCHES}
    )
    select m.*, ts_rank(m.search_vector, websearch_to_tsquery('simple', ${f.query}))::float8 as rank
    from newest_matches m
    order by rank desc, m.created_at desc, m.id desc
    limit ${f.limit} offset ${f.offset}`;
}
