import type { Fragment, Sql } from "../../store/db.ts";
import type { OutgoingEvent, SendsInIndexStatement } from "../port.ts";
import { insertInStreamOrder, randomToken, type EventRow } from "./rows.ts";

/** One room's batch of plain sends, as a group commit carries it; `eventIds`, when given, are the ids the events get. */
export interface PlainBatch {
  roomId: string;
  events: OutgoingEvent[];
  eventIds?: string[];
}

export function newEventId(): string {
  return `$${randomToken(32)}`;
}

/** The batches' events as rows in one stream order, and each batch's event ids. */
export function plainRows(batches: readonly PlainBatch[]): { rows: EventRow[]; eventIds: string[][] } {
  const now = Date.now();
  let ord = 0;
  const perBatch = batches.map(({ roomId, events, eventIds }) =>
    events.map((e, i): EventRow => [ord++, eventIds?.[i] ?? newEventId(), roomId, e.asUser, e.type, JSON.stringify(e.content), now, e.txnId]),
  );
  return { rows: perBatch.flat(), eventIds: perBatch.map((rows) => rows.map((row) => row[1])) };
}

/**
 * The CTEs `plain` (true when every room exists, no txnId is known yet and every sender is
 * joined: the rules sendEvent checks one by one) and `local_sent`, which inserts the rows in
 * stream order under the stream lock. `onPlain` is the condition that lets the insert happen.
 */
export function plainSendCtes(sql: Sql, batches: readonly PlainBatch[], rows: EventRow[], onPlain: Fragment): Fragment {
  const rooms = [...new Set(batches.map((b) => b.roomId))];
  const senders = [...new Map(batches.flatMap((b) => b.events.map((e) => [`${b.roomId}\n${e.asUser}`, [b.roomId, e.asUser]] as const))).values()];
  return sql`
      plain as (
        select (select count(*) from local_matrix_rooms where room_id in ${sql(rooms)}) = ${rooms.length}::int
           and not exists (select 1 from local_matrix_events where txn_id in ${sql(rows.map((row) => row[7]))})
           and (select count(*) from (values ${sql(senders)}) as v (room_id, sender)
                 join local_matrix_state s on s.room_id = v.room_id and s.type = 'm.room.member' and s.state_key = v.sender
                 where s.content->>'membership' = 'join') = ${senders.length}::int as ok
      ),
      local_sent as (${insertInStreamOrder(sql, rows, sql`cross join plain where ${onPlain}`)} returning 1)`;
}

/** The local backend's sends inside the index's statement (see SendsInIndexStatement). */
export function sendsInIndexStatement(isOpen: () => boolean, committed: () => void): SendsInIndexStatement {
  return {
    get open() {
      return isOpen();
    },
    newEventId,
    ctes: (sql, batches) => plainSendCtes(sql, batches, plainRows(batches).rows, sql`local_matrix_plain_or_abort(plain.ok)`),
    committed,
  };
}
