import type { ServiceDeps } from "../deps.ts";
import type { MatrixBackend, StateEntry } from "../../matrix/port.ts";
import { toMatrixUserId } from "../../domain/ids.ts";
import {
  advertisedInSpace,
  canonicalJson,
  childContent,
  groupAliasLocalpart,
  isLiveChild,
  spaceAliasLocalpart,
  spaceJoinRule,
  spaceNameFor,
} from "../../domain/spaces.ts";
import {
  beginSpace,
  claimSpaceCreation,
  findSpace,
  listGroups,
  listPlacedChannels,
  placeChannels,
  setGroupRoom,
  setSpaceRoom,
  setChannelWritten,
  setGroupWritten,
  setWrittenJoinRule,
  type GroupRow,
  type PlacedChannel,
  type SpaceRow,
} from "../../store/spaces.ts";

export type SpaceDeps = Pick<ServiceDeps, "sql" | "matrix" | "log">;

/** The service's user that makes the space rooms and writes their m.space.child state (power 100 there). */
export const spaceUserId = (serverName: string) => `@daarion-space:${serverName}`;

/** A room an Element admin made a child of a space room that the index does not know: reported, never indexed. */
export interface ForeignChild {
  room_id: string;
  parent_room_id: string;
  order: string | null;
  via: string[];
  added_by: string;
}

/** A restricted join rule lists at most this many rooms (the event must stay well under 64 KiB). */
const MAX_ALLOW = 200;
const CLAIM_WAIT_MS = 15_000;

// One sync per microDAO at a time in this process; another instance's is fenced by the claim.
const running = new Map<string, Promise<unknown>>();
// Foreign children already logged by this process (one line each, not one per sync).
const reported = new Set<string>();

/**
 * Makes the microDAO's space (once) and brings its Matrix state in line with the index: every
 * channel of the microDAO gets its place (channels made before spaces existed too), groups get
 * their rooms, m.space.child / m.space.parent are written or emptied, and the spaces' join rules
 * allow the members of the channels they advertise. It writes only what differs from what the
 * index says it wrote; with `full`, from the rooms' current state instead (read from Matrix),
 * which also repairs what someone changed in Matrix. Safe to run again.
 */
export function syncSpace(deps: SpaceDeps, microdaoId: string, opts: { full?: boolean } = {}): Promise<SpaceRow> {
  const before = running.get(microdaoId) ?? Promise.resolve();
  const run = before.catch(() => {}).then(() => doSync(deps, microdaoId, opts.full ?? false));
  running.set(microdaoId, run);
  void run.finally(() => running.get(microdaoId) === run && running.delete(microdaoId)).catch(() => {});
  return run;
}

/** syncSpace for the paths where the channel change is already done: a failure is logged, and the next sync (or POST …/space) finishes it. */
export async function syncSpaceQuietly(deps: SpaceDeps, microdaoId: string): Promise<void> {
  try {
    await syncSpace(deps, microdaoId);
  } catch (err) {
    deps.log.warn({ microdao_id: microdaoId, err: err instanceof Error ? err.message : String(err) }, "could not bring the microDAO's space up to date; the next change or POST …/space retries");
  }
}

type Written = { room: string; order: string | null };

async function doSync(deps: SpaceDeps, microdaoId: string, full: boolean): Promise<SpaceRow> {
  const { sql, matrix } = deps;
  const space = await ensureSpaceRoom(deps, microdaoId);
  const spaceRoom = space.matrix_room_id!;
  await placeChannels(sql, microdaoId);
  const groups = await listGroups(sql, microdaoId);
  for (const group of groups) if (!group.matrix_room_id) group.matrix_room_id = await makeGroupRoom(deps, group);
  const channels = await listPlacedChannels(sql, microdaoId);
  const writer = spaceUserId(matrix.serverName);
  const via = [matrix.serverName];

  const parentOf = (c: PlacedChannel) => (c.group_id ? groups.find((g) => g.id === c.group_id)?.matrix_room_id ?? spaceRoom : spaceRoom);
  const advertised = channels.filter(advertisedInSpace);
  const spaceRooms = [spaceRoom, ...groups.map((g) => g.matrix_room_id!)];

  // What each space room holds now: the index's record of what it wrote, or (full) the room's state.
  const current = new Map<string, Map<string, Written>>(spaceRooms.map((r) => [r, new Map()]));
  if (full) {
    const known = new Set([...channels.map((c) => c.matrix_room_id), ...spaceRooms]);
    for (const room of spaceRooms) {
      for (const entry of await matrix.getStateEvents(room, "m.space.child", writer)) {
        if (!isLiveChild(entry.content)) continue;
        if (!known.has(entry.stateKey)) report(deps, microdaoId, foreignChild(room, entry));
        else current.get(room)!.set(entry.stateKey, { room, order: typeof entry.content.order === "string" ? entry.content.order : null });
      }
    }
  } else {
    for (const c of channels) if (c.written_child) current.get(c.written_child)?.set(c.matrix_room_id, { room: c.written_child, order: c.written_order });
    for (const g of groups) if (g.written_order !== null) current.get(spaceRoom)!.set(g.matrix_room_id!, { room: spaceRoom, order: g.written_order });
  }
  const holding = (child: string) => spaceRooms.filter((r) => current.get(r)!.has(child));
  /** Makes `want` the one space room listing `child` (with `order`), emptying it anywhere else. */
  const place = async (child: string, want: Written | null) => {
    for (const room of holding(child)) {
      if (room !== want?.room) await matrix.sendState(room, writer, "m.space.child", child, {});
    }
    if (want && current.get(want.room)!.get(child)?.order !== want.order) {
      await matrix.sendState(want.room, writer, "m.space.child", child, childContent(matrix.serverName, want.order));
    }
  };

  for (const g of groups) {
    await place(g.matrix_room_id!, { room: spaceRoom, order: g.space_order });
    const parented = full ? isLiveChild(await matrix.getState(g.matrix_room_id!, "m.space.parent", spaceRoom, writer)) : g.written_parent;
    if (!parented) await matrix.sendState(g.matrix_room_id!, writer, "m.space.parent", spaceRoom, { via, canonical: true });
    if (g.written_order !== g.space_order || !g.written_parent) await setGroupWritten(sql, g.id, { order: g.space_order, parent: true });
  }

  for (const c of channels) {
    const want = advertisedInSpace(c) ? { room: parentOf(c), order: c.space_order } : null;
    await place(c.matrix_room_id, want);
    // The channel's room names its space (or group) as parent; the channel's creator writes it (power 100 there).
    const parent = want?.room ?? "";
    const had = c.written_parent ?? "";
    const creator = toMatrixUserId(c.created_by, matrix.serverName);
    if (had && had !== parent) await matrix.sendState(c.matrix_room_id, creator, "m.space.parent", had, {});
    if (parent && (had !== parent || (full && !isLiveChild(await matrix.getState(c.matrix_room_id, "m.space.parent", parent))))) {
      await matrix.sendState(c.matrix_room_id, creator, "m.space.parent", parent, { via, canonical: true });
    }
    const child = want?.room ?? "";
    if (c.written_child !== child || c.written_order !== (want?.order ?? null) || had !== parent) {
      await setChannelWritten(sql, c.channel_id, { child, order: want?.order ?? null, parent });
    }
  }

  // Each space is restricted to the members of the rooms it advertises (a group: and of the microDAO's space).
  const writtenRule = new Map<string, string | null>([[spaceRoom, space.written_join_rule], ...groups.map((g) => [g.matrix_room_id!, g.written_join_rule] as [string, string | null])]);
  for (const room of spaceRooms) {
    const allow = room === spaceRoom ? advertised.map((c) => c.matrix_room_id) : [spaceRoom, ...advertised.filter((c) => parentOf(c) === room).map((c) => c.matrix_room_id)];
    const rule = spaceJoinRule(allow.slice(0, MAX_ALLOW));
    const text = canonicalJson(rule);
    const now = full ? canonicalJson(await matrix.getState(room, "m.room.join_rules", "", writer)) : writtenRule.get(room);
    if (now !== text) await matrix.sendState(room, writer, "m.room.join_rules", "", rule);
    if (writtenRule.get(room) !== text) await setWrittenJoinRule(sql, room, text);
  }
  return space;
}

/** The space's room: made once, by the space user, with an alias only it makes, so a retry after a crash finds it instead of making another. */
async function ensureSpaceRoom(deps: SpaceDeps, microdaoId: string): Promise<SpaceRow> {
  const { sql, matrix } = deps;
  const alias = spaceAliasLocalpart(microdaoId);
  let space = await beginSpace(sql, { microdao_id: microdaoId, matrix_alias: `#${alias}:${matrix.serverName}`, name: spaceNameFor(microdaoId) });
  if (space.matrix_room_id) return space;
  if (!(await claimSpaceCreation(sql, microdaoId))) return waitForSpaceRoom(deps, microdaoId);
  const room = await createSpaceRoom(matrix, alias, space.name);
  space = await setSpaceRoom(sql, microdaoId, room);
  deps.log.info({ microdao_id: microdaoId, matrix_room_id: room }, "microDAO space created");
  return space;
}

/** Another instance is making the room: its row says when it is done (or its claim lapses and this one takes over). */
async function waitForSpaceRoom(deps: SpaceDeps, microdaoId: string): Promise<SpaceRow> {
  const deadline = Date.now() + CLAIM_WAIT_MS;
  while (Date.now() < deadline) {
    await Bun.sleep(200);
    const space = await findSpace(deps.sql, microdaoId);
    if (space?.matrix_room_id) return space;
  }
  return ensureSpaceRoom(deps, microdaoId);
}

async function makeGroupRoom(deps: SpaceDeps, group: GroupRow): Promise<string> {
  const room = await createSpaceRoom(deps.matrix, groupAliasLocalpart(group.microdao_id, group.id), group.name);
  await setGroupRoom(deps.sql, group.id, room);
  return room;
}

export async function createSpaceRoom(matrix: MatrixBackend, aliasLocalpart: string, name: string): Promise<string> {
  const creator = spaceUserId(matrix.serverName);
  await matrix.ensureUser(creator);
  const { roomId } = await matrix.createRoom({
    creator,
    aliasLocalpart,
    name,
    topic: null,
    visibility: "private",
    isEncrypted: false,
    isDirect: false,
    roomType: "m.space",
  });
  return roomId;
}

function foreignChild(parent: string, entry: StateEntry): ForeignChild {
  const via = Array.isArray(entry.content.via) ? (entry.content.via as unknown[]).filter((v): v is string => typeof v === "string") : [];
  return { room_id: entry.stateKey, parent_room_id: parent, order: typeof entry.content.order === "string" ? entry.content.order : null, via, added_by: entry.sender };
}

/** One log line per foreign child and process; the space's view lists them all the time. */
export function report(deps: SpaceDeps, microdaoId: string, child: ForeignChild): void {
  const key = `${child.parent_room_id}|${child.room_id}`;
  if (reported.has(key)) return;
  reported.add(key);
  deps.log.warn(
    { microdao_id: microdaoId, space_room_id: child.parent_room_id, child_room_id: child.room_id, added_by: child.added_by },
    "a room that is not a channel was added to the microDAO's space; it is reported, not indexed",
  );
}

/** The live children of the space and its groups that are neither channels nor groups of the microDAO. */
export async function foreignChildren(deps: SpaceDeps, space: SpaceRow, groups: GroupRow[], channelRooms: Set<string>): Promise<ForeignChild[]> {
  const writer = spaceUserId(deps.matrix.serverName);
  const known = new Set([...channelRooms, ...groups.map((g) => g.matrix_room_id)]);
  const out: ForeignChild[] = [];
  for (const room of [space.matrix_room_id!, ...groups.flatMap((g) => (g.matrix_room_id ? [g.matrix_room_id] : []))]) {
    for (const entry of await deps.matrix.getStateEvents(room, "m.space.child", writer)) {
      if (!isLiveChild(entry.content) || known.has(entry.stateKey)) continue;
      const child = foreignChild(room, entry);
      report(deps, space.microdao_id, child);
      out.push(child);
    }
  }
  return out;
}
