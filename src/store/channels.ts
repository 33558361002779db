import type { Sql, Tx } from "./db.ts";
import type { ChannelRow } from "./rows.ts";
import type { Visibility } from "../domain/rights.ts";
import type { MemberRights } from "../domain/member-rights.ts";

/** Archived channels too: they stay readable, and writes to them are refused (410) by access checks. */
export async function findChannel(sql: Sql | Tx, id: string): Promise<ChannelRow | null> {
  const [row] = await sql<ChannelRow[]>`select * from channels where id = ${id}`;
  return row ?? null;
}

export async function findChannelByRoom(sql: Sql, roomId: string): Promise<ChannelRow | null> {
  const [row] = await sql<ChannelRow[]>`select * from channels where matrix_room_id = ${roomId}`;
  return row ?? null;
}

export async function slugTaken(sql: Sql, slug: string, microdaoId: string): Promise<boolean> {
  const [row] = await sql`select 1 from channels where slug = ${slug} and microdao_id = ${microdaoId}`;
  return Boolean(row);
}

/**
 * Channels the caller may see (the rule of readableChannel): public ones, those they are a
 * current member of with can_read, and, where they are no member, the microdao channels of the
 * microDAOs their token lists.
 */
export async function listVisibleChannels(
  sql: Sql,
  callerId: string,
  microdaoId: string | null,
  includeArchived = false,
  callerMicrodaos: readonly string[] = [],
): Promise<ChannelRow[]> {
  return sql<ChannelRow[]>`
    select c.* from channels c
    left join channel_members m on m.channel_id = c.id and m.member_id = ${callerId} and m.left_at is null
    where (${includeArchived} or c.archived_at is null)
      and (${microdaoId}::text is null or c.microdao_id = ${microdaoId})
      and (c.visibility = 'public' or m.can_read
           or (m.id is null and c.visibility = 'microdao' and c.microdao_id = any(${sql.array([...callerMicrodaos])}::text[])))
    order by c.created_at desc, c.id`;
}

export interface NewChannel {
  id: string;
  slug: string;
  name: string;
  description: string | null;
  topic: string | null;
  microdao_id: string;
  matrix_room_id: string;
  matrix_alias: string;
  visibility: Visibility;
  is_encrypted: boolean;
  created_by: string;
}

export async function insertChannel(tx: Tx, c: NewChannel): Promise<ChannelRow> {
  const [row] = await tx<ChannelRow[]>`
    insert into channels (id, slug, name, description, topic, microdao_id, matrix_room_id, matrix_alias, visibility, is_encrypted, created_by)
    values (${c.id}, ${c.slug}, ${c.name}, ${c.description}, ${c.topic}, ${c.microdao_id}, ${c.matrix_room_id}, ${c.matrix_alias},
            ${c.visibility}, ${c.is_encrypted}, ${c.created_by})
    returning *`;
  return row!;
}

/** A channel whose creation has begun: recorded before its room, deleted with the channel row's insert. */
export interface ChannelCreation {
  channel_id: string;
  slug: string;
  microdao_id: string;
  created_by: string;
  /** The create request's body, so whoever finishes the creation makes the channel that was asked for. */
  request: Record<string, unknown>;
  created_at: Date;
}

/**
 * Records a creation, or answers the one already begun for this slug (by whoever began it;
 * the caller decides whether it may resume it).
 */
export async function beginChannelCreation(
  sql: Sql,
  c: { channel_id: string; slug: string; microdao_id: string; created_by: string; request: Record<string, unknown> },
): Promise<ChannelCreation> {
  const [inserted] = await sql<ChannelCreation[]>`
    insert into channel_creations (channel_id, slug, microdao_id, created_by, request)
    values (${c.channel_id}, ${c.slug}, ${c.microdao_id}, ${c.created_by}, ${sql.json(c.request as never)})
    on conflict do nothing
    returning *`;
  if (inserted) return inserted;
  const [existing] = await sql<ChannelCreation[]>`
    select * from channel_creations where (slug = ${c.slug} and microdao_id = ${c.microdao_id}) or channel_id = ${c.channel_id}`;
  // Gone in between: it was finished (or dropped) just now; the caller's slug check decides.
  return existing ?? (await beginChannelCreation(sql, c));
}

export async function channelCreations(sql: Sql): Promise<ChannelCreation[]> {
  return sql<ChannelCreation[]>`select * from channel_creations order by created_at, channel_id`;
}

export async function dropChannelCreation(sql: Sql | Tx, channelId: string): Promise<void> {
  await sql`delete from channel_creations where channel_id = ${channelId}`;
}

export interface ChannelPatch {
  name?: string;
  description?: string | null;
  topic?: string | null;
  visibility?: Visibility;
}

export async function updateChannel(tx: Tx, id: string, patch: ChannelPatch): Promise<ChannelRow> {
  const [row] = await tx<ChannelRow[]>`
    update channels set
      name = coalesce(${patch.name ?? null}, name),
      description = case when ${"description" in patch} then ${patch.description ?? null} else description end,
      topic = case when ${"topic" in patch} then ${patch.topic ?? null} else topic end,
      visibility = coalesce(${patch.visibility ?? null}, visibility)
    where id = ${id}
    returning *`;
  return row!;
}

export interface PendingInviteRights extends MemberRights {
  invited_by: string;
}

/** The rights of the latest invitation of a Matrix user who has not joined since. */
export async function pendingInvite(sql: Sql | Tx, channelId: string, memberId: string): Promise<PendingInviteRights | null> {
  const [row] = await sql`
    select actor_id, metadata from channel_events
    where channel_id = ${channelId} and target_id = ${memberId} and event_type = 'member.invited'
      and created_at > coalesce((
        select max(created_at) from channel_events
        where channel_id = ${channelId} and target_id = ${memberId}
          and event_type in ('member.joined', 'member.left', 'member.kicked')), '-infinity')
    order by created_at desc limit 1`;
  if (!row?.metadata) return null;
  return { invited_by: row.actor_id, ...(row.metadata as Omit<PendingInviteRights, "invited_by">) };
}

export async function listAllChannels(sql: Sql): Promise<ChannelRow[]> {
  return sql<ChannelRow[]>`select * from channels order by created_at, id`;
}

export async function markArchived(tx: Tx, id: string): Promise<ChannelRow> {
  const [row] = await tx<ChannelRow[]>`update channels set archived_at = now() where id = ${id} returning *`;
  return row!;
}
