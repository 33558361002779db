import type { Sql, Tx } from "./db.ts";
import type { MessageRow } from "./rows.ts";

export interface PinRow {
  channel_id: string;
  message_id: string;
  matrix_event_id: string;
  pinned_by: string;
  pinned_at: Date;
}

export async function findPin(sql: Sql | Tx, channelId: string, messageId: string): Promise<PinRow | null> {
  const [row] = await sql<PinRow[]>`select * from channel_pins where channel_id = ${channelId} and message_id = ${messageId}`;
  return row ?? null;
}

export async function insertPin(tx: Sql | Tx, pin: Omit<PinRow, "pinned_at">): Promise<PinRow> {
  const [row] = await tx<PinRow[]>`
    insert into channel_pins (channel_id, message_id, matrix_event_id, pinned_by)
    values (${pin.channel_id}, ${pin.message_id}, ${pin.matrix_event_id}, ${pin.pinned_by})
    returning *`;
  return row!;
}

export async function deletePin(tx: Sql | Tx, channelId: string, messageId: string): Promise<void> {
  await tx`delete from channel_pins where channel_id = ${channelId} and message_id = ${messageId}`;
}

export async function listPinRows(sql: Sql | Tx, channelId: string): Promise<PinRow[]> {
  return sql<PinRow[]>`select * from channel_pins where channel_id = ${channelId} order by pinned_at desc, message_id`;
}

/** Pins with their messages, most recently pinned first; a deleted message is no longer shown. */
export async function listPins(sql: Sql, channelId: string): Promise<Array<{ pin: PinRow; message: MessageRow }>> {
  const rows = await sql<Array<MessageRow & { pinned_by: string; pinned_at: Date }>>`
    select m.*, p.pinned_by, p.pinned_at
    from channel_pins p join messages m on m.id = p.message_id
    where p.channel_id = ${channelId} and m.deleted_at is null
    order by p.pinned_at desc, p.message_id`;
  return rows.map(({ pinned_by, pinned_at, ...message }) => ({
    pin: { channel_id: channelId, message_id: message.id, matrix_event_id: message.matrix_event_id!, pinned_by, pinned_at },
    message,
  }));
}
