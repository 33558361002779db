import type { Sql } from "./db.ts";

/**
 * The queues a scrape reports, in one round trip. Each count is cheap: pending messages use
 * the partial index messages_pending_idx, and the inbox and event outbox stay short when healthy.
 */
export async function queueDepths(sql: Sql): Promise<{ outboxPending: number; inboxDepth: number; natsOutboxDepth: number }> {
  const [row] = await sql<Array<{ pending: string; inbox: string; events: string }>>`
    select
      (select count(*) from messages where delivery_state = 'pending') as pending,
      (select count(*) from matrix_inbox) as inbox,
      (select count(*) from event_outbox) as events`;
  return { outboxPending: Number(row!.pending), inboxDepth: Number(row!.inbox), natsOutboxDepth: Number(row!.events) };
}
