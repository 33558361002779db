import type { Sql, Tx } from "./db.ts";
import type { EventTypes, MatrixEvent } from "../domain/event-types.ts";
import { submitTogether } from "./group-commit.ts";

/** Only what the channels index is worth making durable (all of it when `types` is left out). */
function inboxRows(sql: Sql | Tx, events: MatrixEvent[], types?: EventTypes) {
  return events
    .filter((event) => !types || types.timeline.includes(event.type) || types.ephemeral.includes(event.type))
    .map((event) => ({ event_id: event.event_id, room_id: event.room_id, event: sql.json(event as never) }));
}

async function insertEvents(tx: Tx, events: MatrixEvent[], types?: EventTypes): Promise<void> {
  const rows = inboxRows(tx, events, types);
  // One statement: the rows take their inbox positions in the order given.
  if (rows.length > 0) await tx`insert into matrix_inbox ${tx(rows)} on conflict (event_id) do nothing`;
}

/**
 * A /sync batch and its next_batch in one statement, hence one transaction: a restart neither
 * misses nor repeats it. The same statement reads the inbox's first `page` rows as they are
 * after the write (what was there, then this batch's new rows: the statement's snapshot does
 * not see its own inserts), so the drain that follows starts without a round trip of its
 * own. null when the batch held nothing worth keeping.
 */
export async function storeSyncBatch(sql: Sql, stateKey: string, nextBatch: string, events: MatrixEvent[], types: EventTypes, page: number): Promise<InboxRow[] | null> {
  const rows = inboxRows(sql, events, types);
  const position = sql`
    insert into matrix_sync_state (homeserver, next_batch) values (${stateKey}, ${nextBatch})
    on conflict (homeserver) do update set next_batch = excluded.next_batch, updated_at = now()`;
  if (rows.length === 0) {
    await position;
    return null;
  }
  // Its commit does not wait for the WAL flush (synchronous_commit off for this transaction
  // alone): lost in a database crash, the batch goes with its next_batch, so the next /sync
  // asks for it again; and the index write that consumes a row flushes the WAL up to it first.
  // A pushed transaction (storePushTransaction) stays durable: the homeserver would not resend it.
  return sql<InboxRow[]>`
    with stored as (insert into matrix_inbox ${sql(rows)} on conflict (event_id) do nothing returning position, event_id, event),
      kept as (${position}),
      relaxed as (select set_config('synchronous_commit', 'off', true))
    select i.position, i.event, ${indexedColumn(sql)} from matrix_inbox i, relaxed
    union all
    select i.position, i.event, ${indexedColumn(sql)} from stored i
    order by position
    limit ${page}`;
}

/**
 * A pushed application-service transaction and its txnId, in one transaction. Returns false
 * if the txnId was seen before (the homeserver retried): nothing is written twice.
 */
export async function storePushTransaction(sql: Sql, txnId: string, events: MatrixEvent[], types: EventTypes): Promise<boolean> {
  return sql.begin(async (tx) => {
    const [inserted] = await tx`
      insert into matrix_push_transactions (txn_id, event_count) values (${txnId}, ${events.length})
      on conflict (txn_id) do nothing returning txn_id`;
    if (!inserted) return false;
    await insertEvents(tx, events, types);
    return true;
  });
}

/** Events found some other way (a reconciliation, which asks only for messages), made durable before they are handed to the channels. */
export async function enqueueEvents(sql: Sql, events: MatrixEvent[]): Promise<void> {
  if (events.length === 0) return;
  await sql.begin((tx) => insertEvents(tx, events));
}

export async function loadSyncPosition(sql: Sql, stateKey: string): Promise<string | null> {
  const [row] = await sql`select next_batch from matrix_sync_state where homeserver = ${stateKey}`;
  return (row?.next_batch as string | undefined) ?? null;
}

export interface InboxRow {
  position: string;
  event: MatrixEvent;
  /** Whether a message of this event id was in the index when the row was read. */
  indexed: boolean;
}

const indexedColumn = (sql: Sql) => sql`exists (select 1 from messages m where m.matrix_event_id = i.event_id) as indexed`;

export async function readInbox(sql: Sql, limit: number): Promise<InboxRow[]> {
  return sql<InboxRow[]>`select i.position, i.event, ${indexedColumn(sql)} from matrix_inbox i order by i.position limit ${limit}`;
}

/** Called inside the transaction that indexed (or deliberately skipped) the event. */
export async function consumeInboxEvent(tx: Sql | Tx, eventId: string): Promise<void> {
  await tx`delete from matrix_inbox where event_id = ${eventId}`;
}

/** consumeInboxEvents, in one statement with what other channels consume at the same moment (store/group-commit.ts). */
export function consumeInboxEventsTogether(sql: Sql, eventIds: string[]): Promise<void> {
  return submitTogether(sql, consumeMerged, eventIds);
}

async function consumeMerged(sql: Sql, jobs: readonly string[][]): Promise<void[]> {
  await consumeInboxEvents(sql, jobs.flat());
  return jobs.map(() => undefined);
}

/** consumeInboxEvent for several events in one statement. */
export async function consumeInboxEvents(tx: Sql | Tx, eventIds: string[]): Promise<void> {
  if (eventIds.length === 0) return;
  await tx`delete from matrix_inbox where event_id in ${tx(eventIds)}`;
}
