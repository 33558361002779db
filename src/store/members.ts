import type { Sql, Tx } from "./db.ts";
import type { MemberRow } from "./rows.ts";
import type { SenderType } from "../domain/ids.ts";
import type { MemberRights } from "../domain/member-rights.ts";
import { recordChannelEvent } from "./channel-events.ts";

export async function findMember(sql: Sql | Tx, channelId: string, memberId: string): Promise<MemberRow | null> {
  const [row] = await sql<MemberRow[]>`
    select * from channel_members where channel_id = ${channelId} and member_id = ${memberId} and left_at is null`;
  return row ?? null;
}

export async function listMembers(sql: Sql, channelId: string): Promise<MemberRow[]> {
  return sql<MemberRow[]>`
    select * from channel_members where channel_id = ${channelId} and left_at is null
    order by joined_at, id`;
}

export interface NewMember extends MemberRights {
  channel_id: string;
  member_id: string;
  member_type: SenderType;
  matrix_user_id: string;
  matrix_power_level: number;
  invited_by: string | null;
  display_name?: string | null;
}

/** Inserts a member, or re-activates one who left, with the new role and rights. */
export async function upsertMember(tx: Tx, m: NewMember): Promise<MemberRow> {
  const [row] = await tx<MemberRow[]>`
    insert into channel_members (channel_id, member_id, member_type, matrix_user_id, role, can_read, can_write,
                                 can_invite, can_kick, can_create_tasks, matrix_power_level, invited_by, display_name)
    values (${m.channel_id}, ${m.member_id}, ${m.member_type}, ${m.matrix_user_id}, ${m.role}, ${m.can_read},
            ${m.can_write}, ${m.can_invite}, ${m.can_kick}, ${m.can_create_tasks}, ${m.matrix_power_level}, ${m.invited_by},
            ${m.display_name ?? null})
    on conflict (channel_id, member_id) do update set
      role = excluded.role, can_read = excluded.can_read, can_write = excluded.can_write,
      can_invite = excluded.can_invite, can_kick = excluded.can_kick, can_create_tasks = excluded.can_create_tasks,
      matrix_power_level = excluded.matrix_power_level, invited_by = excluded.invited_by,
      display_name = coalesce(excluded.display_name, channel_members.display_name),
      joined_at = now(), left_at = null
    returning *`;
  return row!;
}

/** Agents that are current members with the right to write: the agent filter's allow-list. */
export async function listWritingAgents(sql: Sql, channelId: string): Promise<string[]> {
  const rows = await sql<{ member_id: string }[]>`
    select member_id from channel_members
    where channel_id = ${channelId} and member_type = 'agent' and left_at is null and can_write
    order by member_id`;
  return rows.map((r) => r.member_id);
}

export async function listSilencedAgents(sql: Sql, channelId: string): Promise<string[]> {
  const rows = await sql<{ member_id: string }[]>`
    select member_id from channel_members
    where channel_id = ${channelId} and member_type = 'agent' and left_at is null and not can_write
    order by member_id`;
  return rows.map((r) => r.member_id);
}

export async function markLeft(tx: Sql | Tx, channelId: string, memberId: string): Promise<MemberRow | null> {
  const [row] = await tx<MemberRow[]>`
    update channel_members set left_at = now()
    where channel_id = ${channelId} and member_id = ${memberId} and left_at is null
    returning *`;
  return row ?? null;
}

/** The rights with the Matrix power level that goes with the role. */
export interface AppliedRights extends MemberRights {
  matrix_power_level: number;
}

export async function updateMemberRights(tx: Sql | Tx, channelId: string, memberId: string, r: AppliedRights): Promise<MemberRow> {
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

/** A leave or a kick: the membership ends and the audit log says who ended it, in the caller's transaction. */
export async function recordDeparture(
  tx: Tx,
  d: { channelId: string; memberId: string; actorId: string; kicked: boolean; metadata: Record<string, unknown> },
): Promise<MemberRow | null> {
  const row = await markLeft(tx, d.channelId, d.memberId);
  await recordChannelEvent(tx, {
    channel_id: d.channelId,
    event_type: d.kicked ? "member.kicked" : "member.left",
    actor_id: d.actorId,
    target_id: d.memberId,
    metadata: d.metadata,
  });
  return row;
}

/** Which of these ids are current members who may read the channel, i.e. may be mentioned in it. */
export async function mentionableMembers(
  sql: Sql | Tx,
  channelId: string,
  memberIds: string[],
): Promise<Array<Pick<MemberRow, "member_id" | "member_type" | "matrix_user_id" | "display_name">>> {
  if (memberIds.length === 0) return [];
  return sql<Array<Pick<MemberRow, "member_id" | "member_type" | "matrix_user_id" | "display_name">>>`
    select member_id, member_type, matrix_user_id, display_name from channel_members
    where channel_id = ${channelId} and left_at is null and can_read and member_id = any(${memberIds}::text[])`;
}
