import type { Sql, Tx } from "./db.ts";
import type { MemberRow, Role } from "./rows.ts";

export interface MemberRights {
  role: Role;
  can_read: boolean;
  can_write: boolean;
  can_invite: boolean;
  can_kick: boolean;
  can_create_tasks: boolean;
  matrix_power_level: number;
}

export async function updateMemberRights(tx: Sql | Tx, channelId: string, memberId: string, r: MemberRights): Promise<MemberRow> {
  const [row] = await tx<MemberRow[]>`
    update channel_members set role = ${r.role}, can_read = ${r.can_read}, can_write = ${r.can_write},
      can_invite = ${r.can_invite}, can_kick = ${r.can_kick}, can_create_tasks = ${r.can_create_tasks},
      matrix_power_level = ${r.matrix_power_level}
    where channel_id = ${channelId} and member_id = ${memberId} and left_at is null
    returning *`;
  return row!;
}

export async function listCurrentMembers(sql: Sql | Tx, channelId: string): Promise<MemberRow[]> {
  return sql<MemberRow[]>`select * from channel_members where channel_id = ${channelId} and left_at is null order by joined_at, id`;
}

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
