import type { Sql } from "../../store/db.ts";
import type { MatrixBackend, MatrixEvent } from "../../matrix/port.ts";
import { indexedMessageEvents } from "../../store/messages.ts";

const PAGE = 100;
/** 100 000 events a room; a bigger room is reported as only partly checked. */
const MAX_PAGES = 1000;

export interface TimelineScan {
  /** m.room.message events that the index has no row for, oldest first. */
  missing: MatrixEvent[];
  /** Every message event id in the room that still has content. */
  live: Set<string>;
  /** Message events whose content the homeserver removed. */
  redacted: Set<string>;
  /** False when the walk stopped at its page bound before the room's first event. */
  complete: boolean;
}

/** A message the index should hold: not an edit (that is an edit row), not redacted away. */
function isIndexable(event: MatrixEvent): boolean {
  const relation = event.content["m.relates_to"] as { rel_type?: string } | undefined;
  return relation?.rel_type !== "m.replace";
}

const isRedacted = (event: MatrixEvent) => Object.keys(event.content).length === 0;

/**
 * Walks a room's timeline newest first. Each page is checked against the index right away, so
 * memory holds event ids and only the events that are actually missing.
 */
export async function scanTimeline(sql: Sql, matrix: MatrixBackend, roomId: string): Promise<TimelineScan> {
  const missing: MatrixEvent[] = [];
  const live = new Set<string>();
  const redacted = new Set<string>();
  let from: string | null = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const { events, end } = await matrix.roomMessages(roomId, { from, dir: "b", limit: PAGE });
    const messages = events.filter((e) => e.type === "m.room.message");
    const candidates: MatrixEvent[] = [];
    for (const event of messages) {
      if (isRedacted(event)) {
        redacted.add(event.event_id);
        continue;
      }
      live.add(event.event_id);
      if (isIndexable(event)) candidates.push(event);
    }
    if (candidates.length > 0) {
      const ids = candidates.map((e) => e.event_id);
      const known = await indexedMessageEvents(sql, ids);
      for (const event of candidates) if (!known.has(event.event_id)) missing.push(event);
    }
    if (!end) return { missing: missing.reverse(), live, redacted, complete: true };
    from = end;
  }
  return { missing: missing.reverse(), live, redacted, complete: false };
}
