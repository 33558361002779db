import type { Sql, Tx } from "../../store/db.ts";
import { MatrixError, type MatrixEvent } from "../port.ts";

/** An event as local_matrix_events stores it. */
export type Row = {
  stream_ordering: string;
  event_id: string;
  room_id: string;
  sender: string;
  type: string;
  state_key: string | null;
  content: Record<string, unknown>;
  origin_server_ts: string;
};

// Writers take this lock first, so stream_ordering is allocated in commit order and a sync
// reader can never see event n+1 before event n has committed.
export const STREAM_WRITE_LOCK = 7004_0002;

export function toEvent(row: Row): MatrixEvent {
  const redacts = row.type === "m.room.redaction" ? (row.content.redacts as string | undefined) : undefined;
  const event: MatrixEvent = {
    event_id: row.event_id,
    room_id: row.room_id,
    sender: row.sender,
    type: row.type,
    content: row.content,
    origin_server_ts: Number(row.origin_server_ts),
  };
  if (row.state_key !== null) event.state_key = row.state_key;
  if (redacts) event.redacts = redacts;
  return event;
}

/** An event to insert: its place in the batch, event_id, room_id, sender, type, content (JSON), origin_server_ts, txn_id. */
export type EventRow = [number, string, string, string, string, string, number, string];

/**
 * Inserts events in the order given, taking the stream lock inside the statement: the sort
 * runs after the lock is granted and before the first row takes its stream_ordering, which is
 * so handed out in commit order, and in the batch's order. `onlyIf` may join a condition.
 */
export function insertInStreamOrder(sql: Sql | Tx, rows: EventRow[], onlyIf = sql``) {
  return sql`
    insert into local_matrix_events (event_id, room_id, sender, type, content, origin_server_ts, txn_id)
    select v.event_id, v.room_id, v.sender, v.type, v.content::jsonb, v.origin_server_ts::bigint, v.txn_id
    from (values ${sql(rows)}) as v (ord, event_id, room_id, sender, type, content, origin_server_ts, txn_id)
    cross join (select pg_advisory_xact_lock(${STREAM_WRITE_LOCK})) as stream_lock
    ${onlyIf}
    order by v.ord::int`;
}

/** `s{timeline}_{epoch}_{ephemeral}`; a bare `s{timeline}` (written before ephemeral events existed) is valid too. */
export function parseSince(since: string): { from: number; epoch: string | null; ephemeralFrom: number } {
  const m = /^s(\d+)(?:_([A-Za-z0-9]+)_(\d+))?$/.exec(since);
  if (!m) throw new MatrixError("M_INVALID_PARAM", "Invalid since token", 400);
  return { from: Number(m[1]), epoch: m[2] ?? null, ephemeralFrom: Number(m[3] ?? 0) };
}

/** `t{stream_ordering}`: the position a /messages page ended at. */
export function parseMessagesToken(token: string): number {
  const m = /^t(\d+)$/.exec(token);
  if (!m) throw new MatrixError("M_INVALID_PARAM", "Invalid from token", 400);
  return Number(m[1]);
}

export function randomToken(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url");
}
