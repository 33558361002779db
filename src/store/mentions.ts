import type { Sql, Tx } from "./db.ts";
import type { MessageRow } from "./rows.ts";
import { queueEventsStatement, type QueuedEvent } from "./event-outbox.ts";

export type MentionRow = MessageRow & { mention_position: string; mentioned_at: Date };

/**
 * The messages that mention a member, newest first by when the mention was indexed
 * (message_mentions_member_idx), in channels the member may still read (the rule of
 * readableChannel: public, a current member with can_read, or a microdao channel of one of the
 * caller's microDAOs where they are no member). Deleted messages and failed sends are left out.
 */
export async function listMentions(
  sql: Sql,
  f: { memberId: string; microdaos: readonly string[]; beforePosition: number | null; channelId: string | null; limit: number },
): Promise<MentionRow[]> {
  return sql<MentionRow[]>`
    select m.*, mm.position as mention_position, mm.created_at as mentioned_at
    from message_mentions mm
    join messages m on m.id = mm.message_id
    join channels c on c.id = mm.channel_id
    left join channel_members cm on cm.channel_id = c.id and cm.member_id = ${f.memberId} and cm.left_at is null
    where mm.member_id = ${f.memberId}
      and (${f.beforePosition}::bigint is null or mm.position < ${f.beforePosition})
      and (${f.channelId}::uuid is null or mm.channel_id = ${f.channelId}::uuid)
      and m.deleted_at is null
      and m.delivery_state <> 'failed'
      and (
        c.visibility = 'public' or cm.can_read
        or (cm.id is null and c.visibility = 'microdao' and c.microdao_id = any(${sql.array([...f.microdaos])}::text[]))
      )
    order by mm.position desc
    limit ${f.limit}`;
}

/**
 * An edit's mentions replace the message's: rows of members no longer mentioned go, new ones
 * are added (indexed now, so they page as new), and `events` (for the newly mentioned agents)
 * are queued, all in the edit's transaction. Returns the message as it is now.
 */
export async function replaceMentions(tx: Tx, message: MessageRow, memberIds: string[], events: QueuedEvent[] | null): Promise<MessageRow> {
  await tx`delete from message_mentions where message_id = ${message.id} and not (member_id = any(${memberIds}::text[]))`;
  if (memberIds.length > 0) {
    await tx`
      insert into message_mentions (message_id, channel_id, member_id, seq, created_at)
      select ${message.id}::uuid, ${message.channel_id}::uuid, member_id, ${message.seq}::bigint, ${message.created_at}
      from unnest(${memberIds}::text[]) as member_id
      on conflict (message_id, member_id) do nothing`;
  }
  if (events?.length) await queueEventsStatement(tx, events);
  const [row] = await tx<MessageRow[]>`update messages set mentions = ${memberIds}::text[] where id = ${message.id} returning *`;
  return row!;
}
