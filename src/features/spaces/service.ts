import type { ServiceDeps } from "../deps.ts";
import { orMatrixUnavailable } from "../../matrix/unavailable.ts";
import { AppError, forbidden, notFound } from "../../errors.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { requireAdmin } from "../../domain/rights.ts";
import { callerMicrodaos } from "../../access/caller-scope.ts";
import { advertisedInSpace, compareSpaceChildren, defaultSpaceOrder, groupAliasLocalpart } from "../../domain/spaces.ts";
import { listVisibleChannels } from "../../store/channels.ts";
import {
  adminsMicrodao,
  findGroup,
  findPlacedChannel,
  findSpace,
  insertGroup,
  listGroups,
  listPlacedChannels,
  moveChannel,
  updateGroup,
  type GroupRow,
  type PlacedChannel,
} from "../../store/spaces.ts";
import { foreignChildren, spaceUserId, syncSpace } from "./sync.ts";
import type { CreateGroupBody, PlaceChannelBody, SpaceChannelView, SpaceGroupView, SpaceView, UpdateGroupBody } from "./model.ts";

/**
 * A microDAO's Matrix space: its view, its channel groups (sub-spaces) and where each channel
 * sits. Reading needs an identity only (the channels listed are those the caller may see);
 * making the space, groups and moves need an owner or admin (of a channel of the microDAO; of
 * the moved channel for a move).
 */
export class SpaceService {
  constructor(private readonly deps: ServiceDeps) {}

  async get(callerId: string, microdaoId: string): Promise<SpaceView> {
    const { sql } = this.deps;
    const space = await findSpace(sql, microdaoId);
    if (!space?.matrix_room_id) throw notFound("space");
    const [groups, placed, visible, admin] = await Promise.all([
      listGroups(sql, microdaoId),
      listPlacedChannels(sql, microdaoId),
      listVisibleChannels(sql, callerId, microdaoId, false, callerMicrodaos()),
      adminsMicrodao(sql, callerId, microdaoId),
    ]);
    const readable = new Set(visible.map((c) => c.id));
    const shown = placed.filter((c) => readable.has(c.channel_id) && c.archived_at === null).sort(byOrder).map(channelView);
    // Who added which room is for the microDAO's owners and admins; the others see the channels.
    const foreign = admin
      ? await matrixCall(() => foreignChildren(this.deps, space, groups, new Set(placed.map((c) => c.matrix_room_id))))
      : [];
    return {
      microdao_id: microdaoId,
      name: space.name,
      matrix_room_id: space.matrix_room_id,
      matrix_alias: space.matrix_alias,
      groups: groups.sort((a, b) => compareSpaceChildren(groupKey(a), groupKey(b))).map((g) => groupView(g, shown)),
      channels: shown.filter((c) => c.group_id === null),
      foreign_children: foreign,
    };
  }

  /** Makes the space when it is missing and brings its Matrix state up to date (channels made before spaces existed join it). */
  async ensure(callerId: string, microdaoId: string): Promise<SpaceView> {
    await this.requireMicrodaoAdmin(callerId, microdaoId);
    // From the rooms' state, not the index's record: this also repairs what was changed in Matrix.
    await matrixCall(() => syncSpace(this.deps, microdaoId, { full: true }));
    return this.get(callerId, microdaoId);
  }

  async createGroup(callerId: string, microdaoId: string, body: CreateGroupBody, keyedId?: string): Promise<SpaceGroupView> {
    await this.requireMicrodaoAdmin(callerId, microdaoId);
    const { sql, matrix } = this.deps;
    await matrixCall(() => syncSpace(this.deps, microdaoId));
    const id = keyedId ?? Bun.randomUUIDv7();
    // Recorded before its room: the room's alias derives from the id, so a retry finds the room a crash left.
    await insertGroup(sql, {
      id,
      microdao_id: microdaoId,
      name: body.name,
      space_order: body.order ?? defaultSpaceOrder(new Date()),
      matrix_alias: `#${groupAliasLocalpart(microdaoId, id)}:${matrix.serverName}`,
      created_by: callerId,
    });
    await matrixCall(() => syncSpace(this.deps, microdaoId));
    return this.groupOf(callerId, microdaoId, id);
  }

  async updateGroup(callerId: string, microdaoId: string, groupId: string, body: UpdateGroupBody): Promise<SpaceGroupView> {
    await this.requireMicrodaoAdmin(callerId, microdaoId);
    const { sql, matrix } = this.deps;
    const group = await findGroup(sql, microdaoId, groupId);
    if (!group) throw notFound("group");
    if (body.name !== undefined && body.name !== group.name && group.matrix_room_id) {
      const room = group.matrix_room_id;
      await matrixCall(() => matrix.sendState(room, spaceUserId(matrix.serverName), "m.room.name", "", { name: body.name }));
    }
    await updateGroup(sql, groupId, body);
    await matrixCall(() => syncSpace(this.deps, microdaoId));
    return this.groupOf(callerId, microdaoId, groupId);
  }

  /** Moves a channel into a group (or back into the space) and/or changes its order; owners and admins of the channel. */
  async placeChannel(callerId: string, microdaoId: string, channelId: string, body: PlaceChannelBody): Promise<SpaceChannelView> {
    const { sql } = this.deps;
    const access = await readableChannel(sql, callerId, channelId);
    if (access.channel.microdao_id !== microdaoId) throw notFound("channel");
    requireAdmin(access);
    if (body.group_id && !(await findGroup(sql, microdaoId, body.group_id))) {
      throw new AppError(400, "INVALID_GROUP", "group_id is not a group of this microDAO");
    }
    // The channel gets its place with the space's first sync.
    if (!(await findPlacedChannel(sql, channelId))) await matrixCall(() => syncSpace(this.deps, microdaoId));
    await moveChannel(sql, channelId, body);
    await matrixCall(() => syncSpace(this.deps, microdaoId));
    const placed = (await listPlacedChannels(sql, microdaoId)).find((c) => c.channel_id === channelId)!;
    return channelView(placed);
  }

  private async groupOf(callerId: string, microdaoId: string, groupId: string): Promise<SpaceGroupView> {
    const view = await this.get(callerId, microdaoId);
    return view.groups.find((g) => g.id === groupId)!;
  }

  private async requireMicrodaoAdmin(callerId: string, microdaoId: string): Promise<void> {
    if (await adminsMicrodao(this.deps.sql, callerId, microdaoId)) return;
    const [any] = await this.deps.sql`select 1 from channels where microdao_id = ${microdaoId} limit 1`;
    if (!any) throw notFound("microDAO");
    throw forbidden("only owners and admins of the microDAO's channels may change its space");
  }
}

const groupKey = (g: GroupRow) => ({ order: g.space_order, room_id: g.matrix_room_id ?? g.id });
const byOrder = (a: PlacedChannel, b: PlacedChannel) =>
  compareSpaceChildren({ order: a.space_order, room_id: a.matrix_room_id }, { order: b.space_order, room_id: b.matrix_room_id });

function channelView(c: PlacedChannel): SpaceChannelView {
  return {
    id: c.channel_id,
    slug: c.slug,
    name: c.name,
    visibility: c.visibility as SpaceChannelView["visibility"],
    matrix_room_id: c.matrix_room_id,
    group_id: c.group_id,
    order: c.space_order,
    advertised: advertisedInSpace(c),
  };
}

function groupView(g: GroupRow, channels: SpaceChannelView[]): SpaceGroupView {
  return {
    id: g.id,
    microdao_id: g.microdao_id,
    name: g.name,
    order: g.space_order,
    matrix_room_id: g.matrix_room_id,
    matrix_alias: g.matrix_alias,
    created_by: g.created_by,
    created_at: g.created_at.toISOString(),
    updated_at: g.updated_at.toISOString(),
    channels: channels.filter((c) => c.group_id === g.id),
  };
}

const matrixCall = <T>(fn: () => Promise<T>) => orMatrixUnavailable(fn, "did not update the space");
