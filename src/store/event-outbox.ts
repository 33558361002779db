import type { Sql, Tx } from "./db.ts";

/** Events waiting to reach NATS, in the order they are to be published. */
export interface OutboxRow {
  position: string;
  event_id: string;
  subject: string;
  payload: unknown;
}

export interface QueuedEvent {
  eventId: string;
  subject: string;
  payload: unknown;
}

/**
 * The INSERT of a batch of events (an event already queued, same event id, is kept once): a
 * statement of its own, or carried with the index write it belongs to (a CTE).
 */
export function queueEventsStatement(sql: Sql | Tx, events: QueuedEvent[]) {
  const rows = events.map((e) => ({ event_id: e.eventId, subject: e.subject, payload: sql.json(e.payload as never) }));
  return sql`insert into event_outbox ${sql(rows)} on conflict (event_id) do nothing`;
}

export async function oldestQueuedEvents(sql: Sql, limit: number): Promise<OutboxRow[]> {
  return sql<OutboxRow[]>`
          select position, event_id, subject, payload from event_outbox order by position limit ${limit}`;
}

export async function deleteQueuedEvents(sql: Sql, positions: string[]): Promise<void> {
  await sql`delete from event_outbox where position in ${sql(positions)}`;
}
