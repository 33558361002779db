import type { Sql, Tx } from "./db.ts";
import type { MessageRow } from "./rows.ts";

export interface EditRow {
  id: string;
  message_id: string;
  version: number;
  matrix_event_id: string | null;
  editor_id: string;
  content_preview: string;
  formatted_body: string | null;
  created_at: Date;
}

export async function findEditByEvent(sql: Sql | Tx, eventId: string): Promise<EditRow | null> {
  const [row] = await sql<EditRow[]>`select * from message_edits where matrix_event_id = ${eventId}`;
  return row ?? null;
}

export async function listEdits(sql: Sql | Tx, messageId: string): Promise<EditRow[]> {
  return sql<EditRow[]>`select * from message_edits where message_id = ${messageId} order by version`;
}

/**
 * Records a new version and makes it the message's preview. The original becomes version 1 on
 * the first edit, so a message never edited has no history rows.
 */
export async function recordEdit(
  tx: Tx,
  message: MessageRow,
  edit: { matrix_event_id: string; editor_id: string; content_preview: string; formatted_body: string | null; created_at: Date },
): Promise<{ message: MessageRow; version: number }> {
  await tx`
    insert into message_edits (message_id, version, matrix_event_id, editor_id, content_preview, created_at)
    values (${message.id}, 1, ${message.matrix_event_id}, ${message.sender_id}, ${message.content_preview}, ${message.created_at})
    on conflict (message_id, version) do nothing`;
  const [last] = await tx`select max(version)::int as v from message_edits where message_id = ${message.id}`;
  const version = Number(last!.v) + 1;
  await tx`
    insert into message_edits (message_id, version, matrix_event_id, editor_id, content_preview, formatted_body, created_at)
    values (${message.id}, ${version}, ${edit.matrix_event_id}, ${edit.editor_id}, ${edit.content_preview}, ${edit.formatted_body}, ${edit.created_at})`;
  const [row] = await tx<MessageRow[]>`
    update messages set content_preview = ${edit.content_preview}, edited_at = ${edit.created_at}
    where id = ${message.id} returning *`;
  return { message: row!, version };
}

/** A redacted message keeps its place (seq) but no content: preview, mentions, a voice message's waveform, its link preview (and the job for one) and edit history go. */
export async function markMessageDeleted(tx: Tx, messageId: string, at: Date): Promise<MessageRow | null> {
  await tx`delete from message_edits where message_id = ${messageId}`;
  await tx`delete from message_mentions where message_id = ${messageId}`;
  await tx`delete from link_preview_jobs where message_id = ${messageId}`;
  const [row] = await tx<MessageRow[]>`
    update messages set deleted_at = ${at}, content_preview = '', mentions = '{}', voice_duration_ms = null, voice_waveform = null,
      link_preview_url = null, link_preview = null
    where id = ${messageId} and deleted_at is null returning *`;
  return row ?? null;
}
