import { ignored, type EventHandler } from "../../channel/handlers.ts";
import type { MatrixEvent } from "../../matrix/port.ts";
import type { ServiceDeps } from "../deps.ts";
import { Subjects } from "../../events/model.ts";
import { isLiveChild } from "../../domain/spaces.ts";
import { findChannelByRoom } from "../../store/channels.ts";
import { findSpaceByRoom, findGroupByRoom } from "../../store/spaces.ts";
import { report, spaceUserId } from "./sync.ts";

/**
 * m.space.child is asked of /sync for the space rooms (which are no channels: their events reach
 * spaceRoomEvent below). In a channel's own room it means nothing to the index.
 */
const childInChannel: EventHandler = {
  kinds: ["m.space.child"],
  async handle() {
    return ignored();
  },
};

export const spaceHandlers: EventHandler[] = [childInChannel];

/**
 * An event of a room that is no channel. A Matrix user (an Element admin of the space) who makes
 * a room that is not a channel a child of a microDAO's space, or of one of its groups, is
 * reported: a log line and messaging.space.child_reported. The room is never indexed as a channel.
 */
export async function spaceRoomEvent(deps: Pick<ServiceDeps, "sql" | "matrix" | "log" | "events">, event: MatrixEvent): Promise<void> {
  if (event.type !== "m.space.child" || typeof event.state_key !== "string" || !isLiveChild(event.content)) return;
  if (event.sender === spaceUserId(deps.matrix.serverName)) return;
  const { sql } = deps;
  const space = (await findSpaceByRoom(sql, event.room_id)) ?? (await findGroupByRoom(sql, event.room_id));
  if (!space) return;
  const child = event.state_key;
  if ((await findChannelByRoom(sql, child)) || (await findSpaceByRoom(sql, child)) || (await findGroupByRoom(sql, child))) return;
  const via = (event.content.via as unknown[]).filter((v): v is string => typeof v === "string");
  const order = typeof event.content.order === "string" ? event.content.order : null;
  report(deps, space.microdao_id, { room_id: child, parent_room_id: event.room_id, order, via, added_by: event.sender });
  await deps.events.publish(Subjects.spaceChildReported, {
    event_id: `space.child_reported:${event.event_id}`,
    microdao_id: space.microdao_id,
    space_room_id: event.room_id,
    room_id: child,
    added_by: event.sender,
    via,
    order,
    matrix_event_id: event.event_id,
  });
}
