import type { Sql, Tx } from "./db.ts";
import type { MessageRow } from "./rows.ts";
import type { LinkPreview } from "../wire/link-preview.ts";
import { queueEventsStatement, type QueuedEvent } from "./event-outbox.ts";
import type { PreviewColumns } from "../domain/link-previews.ts";

export type { PreviewColumns };

/** A preview wanted for a message (migration 023), as the worker claims it. */
export interface PreviewJob {
  message_id: string;
  channel_id: string;
  url: string;
  attempts: number;
  /** When the message was sent: the `ts` a homeserver's preview_url is asked for. */
  message_created_at: Date;
}


/** A job is claimed for this long; a claim left by a crashed process is taken again after it. */
export const CLAIM_SECONDS = 120;
/** A job whose fetch was started this often (and never finished) is given up: the message goes without. */
export const MAX_ATTEMPTS = 3;

/**
 * The jobs rows of a message insert want (a link to fetch, no preview yet), as the CTE that
 * writes them with the rows: one statement, both durable or neither.
 */
export function previewJobsStatement(sql: Sql | Tx, rows: Array<{ id: string; channel_id: string } & Partial<PreviewColumns>>) {
  const jobs = rows.filter((r) => r.link_preview_url && !r.link_preview).map((r) => [r.id, r.channel_id, r.link_preview_url!]);
  if (jobs.length === 0) return null;
  return sql`insert into link_preview_jobs (message_id, channel_id, url)
    select v.message_id::uuid, v.channel_id::uuid, v.url from (values ${sql(jobs)}) as v (message_id, channel_id, url)
    on conflict (message_id) do nothing`;
}

/**
 * Up to `limit` jobs of sent messages, oldest first, claimed for this process: none claimed by
 * another process whose claim still runs (FOR UPDATE SKIP LOCKED, then the claim itself), so
 * two workers never take the same job at once. Jobs started MAX_ATTEMPTS times are dropped.
 */
export async function claimPreviewJobs(sql: Sql, owner: string, limit: number): Promise<PreviewJob[]> {
  await sql`delete from link_preview_jobs where attempts >= ${MAX_ATTEMPTS} and claimed_until < now()`;
  return sql<PreviewJob[]>`
    with ready as (
      select j.message_id from link_preview_jobs j join messages m on m.id = j.message_id
      where (j.claimed_until is null or j.claimed_until < now()) and m.delivery_state = 'sent' and m.deleted_at is null
      order by j.created_at
      limit ${limit}
      for update of j skip locked
    )
    update link_preview_jobs j
    set claimed_by = ${owner}, claimed_until = now() + make_interval(secs => ${CLAIM_SECONDS}), attempts = j.attempts + 1
    from ready, messages m
    where j.message_id = ready.message_id and m.id = j.message_id
    returning j.message_id, j.channel_id, j.url, j.attempts, m.created_at as message_created_at`;
}

/** The job is done without a preview (nothing to show, a failed fetch): the message stays as it is. */
export async function dropPreviewJob(sql: Sql, messageId: string, url: string): Promise<void> {
  await sql`delete from link_preview_jobs where message_id = ${messageId} and url = ${url}`;
}

/**
 * Writes the preview of a message that still wants this link (not edited to another, not
 * deleted) and ends its job, with its events queued for NATS: one transaction. Null when the
 * message no longer wants it: nothing changes. Also answers the message's current version.
 */
export async function attachPreview(
  sql: Sql,
  messageId: string,
  url: string,
  preview: LinkPreview,
  events: (row: MessageRow, version: number) => Promise<QueuedEvent[] | null>,
): Promise<{ row: MessageRow; version: number } | null> {
  return sql.begin(async (tx) => {
    await tx`delete from link_preview_jobs where message_id = ${messageId} and url = ${url}`;
    const [row] = await tx<MessageRow[]>`
      update messages set link_preview = ${tx.json(preview as never)}
      where id = ${messageId} and link_preview_url = ${url} and deleted_at is null and delivery_state = 'sent'
      returning *`;
    if (!row) return null;
    const [last] = await tx`select coalesce(max(version), 1)::int as v from message_edits where message_id = ${messageId}`;
    const version = Number(last?.v ?? 1);
    const queued = await events(row, version);
    if (queued?.length) await queueEventsStatement(tx, queued);
    return { row, version };
  });
}

/**
 * An edit's say on the preview, in the edit's transaction: a new link drops the old preview
 * and wants the new one (its job replaces any older one), no link (or previews turned off)
 * drops both; the same link keeps what there is.
 */
export async function retargetPreview(tx: Tx, message: MessageRow, next: PreviewColumns): Promise<MessageRow> {
  if (next.link_preview_url === message.link_preview_url && !next.link_preview) {
    if (next.link_previews_off === message.link_previews_off) return message;
    const [row] = await tx<MessageRow[]>`update messages set link_previews_off = ${next.link_previews_off} where id = ${message.id} returning *`;
    return row!;
  }
  await tx`delete from link_preview_jobs where message_id = ${message.id}`;
  const job = previewJobsStatement(tx, [{ id: message.id, channel_id: message.channel_id, ...next }]);
  if (job) await job;
  const [row] = await tx<MessageRow[]>`
    update messages set link_preview_url = ${next.link_preview_url}, link_previews_off = ${next.link_previews_off},
      link_preview = ${next.link_preview ? tx.json(next.link_preview as never) : null}
    where id = ${message.id} returning *`;
  return row!;
}

/** A cached preview of a link: `preview` null when the page had nothing to show, `failed` when it could not be fetched. */
export async function cachedPreview(sql: Sql, url: string): Promise<{ preview: LinkPreview | null; failed: boolean } | null> {
  const [row] = await sql<{ preview: LinkPreview | null; failed: boolean }[]>`
    select preview, failed from link_preview_cache where url = ${url} and expires_at > now()`;
  return row ?? null;
}

export async function cachePreview(sql: Sql, url: string, entry: { preview: LinkPreview | null; failed: boolean }, ttlSeconds: number): Promise<void> {
  if (ttlSeconds <= 0) return;
  const preview = entry.preview ? sql.json(entry.preview as never) : null;
  await sql`
    insert into link_preview_cache (url, preview, failed, fetched_at, expires_at)
    values (${url}, ${preview}, ${entry.failed}, now(), now() + make_interval(secs => ${ttlSeconds}))
    on conflict (url) do update set preview = excluded.preview, failed = excluded.failed, fetched_at = excluded.fetched_at, expires_at = excluded.expires_at`;
}

/** Expired cache rows go (the table holds the last hours' links only). */
export async function pruneCache(sql: Sql): Promise<number> {
  const gone = await sql`delete from link_preview_cache where expires_at < now()`;
  return gone.count;
}
