import type { Sql, Tx } from "./db.ts";

export interface SpaceRow {
  microdao_id: string;
  matrix_room_id: string | null;
  matrix_alias: string;
  name: string;
  claimed_at: Date | null;
  written_join_rule: string | null;
  created_at: Date;
}

export interface GroupRow {
  id: string;
  microdao_id: string;
  name: string;
  space_order: string;
  matrix_room_id: string | null;
  matrix_alias: string;
  written_order: string | null;
  written_parent: boolean;
  written_join_rule: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

export interface SpaceChannelRow {
  channel_id: string;
  microdao_id: string;
  group_id: string | null;
  space_order: string;
  written_child: string | null;
  written_order: string | null;
  written_parent: string | null;
}

export async function findSpace(sql: Sql | Tx, microdaoId: string): Promise<SpaceRow | null> {
  const [row] = await sql<SpaceRow[]>`select * from microdao_spaces where microdao_id = ${microdaoId}`;
  return row ?? null;
}

/** Records the space (once); the room comes after. */
export async function beginSpace(sql: Sql, s: { microdao_id: string; matrix_alias: string; name: string }): Promise<SpaceRow> {
  await sql`
    insert into microdao_spaces (microdao_id, matrix_alias, name)
    values (${s.microdao_id}, ${s.matrix_alias}, ${s.name})
    on conflict do nothing`;
  return (await findSpace(sql, s.microdao_id))!;
}

/**
 * Takes the right to make the space's room: true when no room is recorded and nobody (else)
 * took it in the last 30 seconds. A crashed attempt's claim lapses; its room is found by alias.
 */
export async function claimSpaceCreation(sql: Sql, microdaoId: string): Promise<boolean> {
  const rows = await sql`
    update microdao_spaces set claimed_at = now()
    where microdao_id = ${microdaoId} and matrix_room_id is null
      and (claimed_at is null or claimed_at < now() - interval '30 seconds')
    returning 1`;
  return rows.length > 0;
}

export async function setSpaceRoom(sql: Sql, microdaoId: string, roomId: string): Promise<SpaceRow> {
  const [row] = await sql<SpaceRow[]>`
    update microdao_spaces set matrix_room_id = ${roomId}, claimed_at = null where microdao_id = ${microdaoId} returning *`;
  return row!;
}

export async function findSpaceByRoom(sql: Sql, roomId: string): Promise<SpaceRow | null> {
  const [row] = await sql<SpaceRow[]>`select * from microdao_spaces where matrix_room_id = ${roomId}`;
  return row ?? null;
}

export async function listGroups(sql: Sql | Tx, microdaoId: string): Promise<GroupRow[]> {
  return sql<GroupRow[]>`select * from space_groups where microdao_id = ${microdaoId} order by space_order, id`;
}

export async function findGroup(sql: Sql | Tx, microdaoId: string, groupId: string): Promise<GroupRow | null> {
  const [row] = await sql<GroupRow[]>`select * from space_groups where id = ${groupId} and microdao_id = ${microdaoId}`;
  return row ?? null;
}

/** Records a group before its room (idempotent per id: a retry with the same Idempotency-Key finds it). */
export async function insertGroup(
  sql: Sql,
  g: { id: string; microdao_id: string; name: string; space_order: string; matrix_alias: string; created_by: string },
): Promise<GroupRow> {
  await sql`
    insert into space_groups (id, microdao_id, name, space_order, matrix_alias, created_by)
    values (${g.id}, ${g.microdao_id}, ${g.name}, ${g.space_order}, ${g.matrix_alias}, ${g.created_by})
    on conflict (id) do nothing`;
  return (await findGroup(sql, g.microdao_id, g.id))!;
}

export async function setGroupRoom(sql: Sql, groupId: string, roomId: string): Promise<void> {
  await sql`update space_groups set matrix_room_id = ${roomId} where id = ${groupId}`;
}

export async function updateGroup(sql: Sql, groupId: string, patch: { name?: string; order?: string }): Promise<GroupRow> {
  const [row] = await sql<GroupRow[]>`
    update space_groups set
      name = coalesce(${patch.name ?? null}, name),
      space_order = coalesce(${patch.order ?? null}, space_order),
      updated_at = now()
    where id = ${groupId}
    returning *`;
  return row!;
}

/** Every channel of the microDAO gets its place in the space (existing channels too), in creation order. */
export async function placeChannels(sql: Sql, microdaoId: string): Promise<void> {
  await sql`
    insert into space_channels (channel_id, microdao_id, space_order)
    select c.id, c.microdao_id, to_char(c.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    from channels c where c.microdao_id = ${microdaoId}
    on conflict (channel_id) do nothing`;
}

export interface PlacedChannel extends SpaceChannelRow {
  matrix_room_id: string;
  visibility: string;
  archived_at: Date | null;
  created_by: string;
  slug: string;
  name: string;
}

export async function listPlacedChannels(sql: Sql | Tx, microdaoId: string): Promise<PlacedChannel[]> {
  return sql<PlacedChannel[]>`
    select s.*, c.matrix_room_id, c.visibility, c.archived_at, c.created_by, c.slug, c.name
    from space_channels s join channels c on c.id = s.channel_id
    where s.microdao_id = ${microdaoId}
    order by s.space_order, c.matrix_room_id`;
}

export async function findPlacedChannel(sql: Sql, channelId: string): Promise<SpaceChannelRow | null> {
  const [row] = await sql<SpaceChannelRow[]>`select * from space_channels where channel_id = ${channelId}`;
  return row ?? null;
}

export async function moveChannel(sql: Sql, channelId: string, patch: { group_id?: string | null; order?: string }): Promise<void> {
  await sql`
    update space_channels set
      group_id = case when ${patch.group_id !== undefined} then ${patch.group_id ?? null}::uuid else group_id end,
      space_order = coalesce(${patch.order ?? null}, space_order)
    where channel_id = ${channelId}`;
}

/** What a sync wrote to Matrix for a channel: the room holding its m.space.child ('' none), that child's order, its m.space.parent ('' none). */
export async function setChannelWritten(sql: Sql, channelId: string, w: { child: string; order: string | null; parent: string }): Promise<void> {
  await sql`
    update space_channels set written_child = ${w.child}, written_order = ${w.order}, written_parent = ${w.parent}
    where channel_id = ${channelId}`;
}

export async function setGroupWritten(sql: Sql, groupId: string, w: { order: string; parent: boolean }): Promise<void> {
  await sql`update space_groups set written_order = ${w.order}, written_parent = ${w.parent} where id = ${groupId}`;
}

/** The join rule last written to a space room (the microDAO's, or a group's). */
export async function setWrittenJoinRule(sql: Sql, roomId: string, rule: string): Promise<void> {
  await sql`update microdao_spaces set written_join_rule = ${rule} where matrix_room_id = ${roomId}`;
  await sql`update space_groups set written_join_rule = ${rule} where matrix_room_id = ${roomId}`;
}

/** Whether the caller is a current owner or admin of any channel of the microDAO. */
export async function adminsMicrodao(sql: Sql, callerId: string, microdaoId: string): Promise<boolean> {
  const [row] = await sql`
    select 1 from channel_members m join channels c on c.id = m.channel_id
    where c.microdao_id = ${microdaoId} and m.member_id = ${callerId} and m.left_at is null
      and m.role in ('owner', 'admin')
    limit 1`;
  return Boolean(row);
}

export async function findGroupByRoom(sql: Sql, roomId: string): Promise<GroupRow | null> {
  const [row] = await sql<GroupRow[]>`select * from space_groups where matrix_room_id = ${roomId}`;
  return row ?? null;
}

/** MicroDAOs whose space is missing, or has channels without a place in it (made before spaces, or a sync cut short). */
export async function spacesBehind(sql: Sql): Promise<Array<{ microdao_id: string; has_space: boolean; unplaced: number }>> {
  return sql<Array<{ microdao_id: string; has_space: boolean; unplaced: number }>>`
    select c.microdao_id, coalesce(bool_or(s.matrix_room_id is not null), false) as has_space, count(*) filter (where p.channel_id is null)::int as unplaced
    from channels c
    left join microdao_spaces s on s.microdao_id = c.microdao_id
    left join space_channels p on p.channel_id = c.id
    group by c.microdao_id
    having not coalesce(bool_or(s.matrix_room_id is not null), false) or count(*) filter (where p.channel_id is null) > 0
    order by c.microdao_id`;
}
