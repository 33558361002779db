import type { Sql, Tx } from "./db.ts";

export interface ChannelEventRow {
  id: string;
  channel_id: string;
  event_type: string;
  actor_id: string;
  target_id: string | null;
  metadata: Record<string, unknown> | null;
  created_at: Date;
  position: string;
}

/** The audit log, newest first; `beforePosition` is the cursor of the previous page. */
export async function listChannelEvents(
  sql: Sql,
  channelId: string,
  opts: { beforePosition: string | null; type: string | null; limit: number },
): Promise<ChannelEventRow[]> {
  return sql<ChannelEventRow[]>`
    select * from channel_events
    where channel_id = ${channelId}
      and (${opts.beforePosition}::bigint is null or position < ${opts.beforePosition}::bigint)
      and (${opts.type}::text is null or event_type = ${opts.type})
    order by position desc
    limit ${opts.limit}`;
}

export async function recordChannelEvent(
  tx: Sql | Tx,
  e: { channel_id: string; event_type: string; actor_id: string; target_id?: string | null; metadata?: Record<string, unknown> | null },
): Promise<void> {
  await tx`
    insert into channel_events (channel_id, event_type, actor_id, target_id, metadata)
    values (${e.channel_id}, ${e.event_type}, ${e.actor_id}, ${e.target_id ?? null},
            ${e.metadata ? tx.json(e.metadata as never) : null})`;
}
