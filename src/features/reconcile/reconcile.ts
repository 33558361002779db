import type { Sql } from "../../store/db.ts";
import type { Logger } from "../../log.ts";
import type { ChannelRegistry } from "../../channel/registry.ts";
import { MatrixError, type MatrixBackend, type MatrixEvent } from "../../matrix/port.ts";
import type { ChannelRow } from "../../store/rows.ts";
import { enqueueEvents } from "../../store/inbox.ts";
import { deliveredMessageEvents, findMessageByEvent, pendingMessages } from "../../store/messages.ts";
import { findChannel, listAllChannels } from "../../store/channels.ts";
import { scanTimeline } from "./timeline.ts";

export interface ReconcileDeps {
  sql: Sql;
  matrix: MatrixBackend;
  registry: ChannelRegistry;
  log: Logger;
}

export interface ReconcileOptions {
  /** One channel; all channels when null. */
  channelId?: string | null;
  fix: boolean;
  /** Called as each channel is done, so a long run reports as it goes. */
  onChannel?: (report: ChannelReconciliation) => void;
}

/** In Matrix, not in the index. */
export interface MissingEntry {
  event_id: string;
  sender: string;
  origin_server_ts: number;
}

/** In the index, but gone from the room (never there, or redacted). */
export interface ExtraEntry {
  message_id: string;
  seq: number;
  matrix_event_id: string;
  reason: "absent" | "redacted";
}

export interface ChannelReconciliation {
  channel_id: string;
  slug: string;
  room_id: string;
  missing: MissingEntry[];
  extra: ExtraEntry[];
  fixed: number;
  /** False when the room was too big to walk to its first event (see timeline.ts). */
  complete: boolean;
  /** Why some differences were left alone even with fix. */
  note: string | null;
}

export interface ReconcileSummary {
  channels: number;
  missing: number;
  extra: number;
  fixed: number;
}

export class UnknownChannelError extends Error {}

/** Who a deletion by reconciliation is attributed to, in the frame and the NATS event. */
export const RECONCILE_ACTOR = "system:reconcile";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Compares the index with each channel's Matrix timeline. With fix, missing messages go
 * through the durable inbox and the channel's actor like any homeserver event (seq, frame,
 * NATS), and messages gone from Matrix are marked deleted the way a redaction would.
 */
export async function reconcile(deps: ReconcileDeps, opts: ReconcileOptions): Promise<{ channels: ChannelReconciliation[]; summary: ReconcileSummary }> {
  const channels = await channelsToCheck(deps.sql, opts.channelId ?? null);
  const reports: ChannelReconciliation[] = [];
  for (const channel of channels) {
    const report = await reconcileChannel(deps, channel, opts.fix);
    reports.push(report);
    opts.onChannel?.(report);
  }
  return {
    channels: reports,
    summary: {
      channels: reports.length,
      missing: reports.reduce((n, r) => n + r.missing.length, 0),
      extra: reports.reduce((n, r) => n + r.extra.length, 0),
      fixed: reports.reduce((n, r) => n + r.fixed, 0),
    },
  };
}

async function channelsToCheck(sql: Sql, channelId: string | null): Promise<ChannelRow[]> {
  if (channelId === null) return listAllChannels(sql);
  const channel = UUID.test(channelId) ? await findChannel(sql, channelId) : null;
  if (!channel) throw new UnknownChannelError(`unknown channel ${channelId}`);
  return [channel];
}

async function reconcileChannel(deps: ReconcileDeps, channel: ChannelRow, fix: boolean): Promise<ChannelReconciliation> {
  const roomId = channel.matrix_room_id;
  const scan = await scanTimeline(deps.sql, deps.matrix, roomId);
  const extra = await findExtra(deps, channel, scan.live, scan.redacted);
  const report: ChannelReconciliation = {
    channel_id: channel.id,
    slug: channel.slug,
    room_id: roomId,
    missing: scan.missing.map((e) => ({ event_id: e.event_id, sender: e.sender, origin_server_ts: e.origin_server_ts })),
    extra,
    fixed: 0,
    complete: scan.complete,
    note: scan.complete ? null : "the room's timeline is longer than one run walks; older events were not compared",
  };
  if (!fix) return report;

  if (scan.missing.length > 0) {
    // A message still in the outbox may already be in Matrix; indexing that event now would
    // clash with its own row when the outbox marks it sent.
    const waiting = (await pendingMessages(deps.sql, channel.id)).length;
    if (waiting > 0) {
      const skipped = `${waiting} message(s) wait for delivery; missing messages were left for a later run`;
      report.note = report.note ? `${report.note}; ${skipped}` : skipped;
    }
    else report.fixed += await indexMissing(deps, channel.id, scan.missing);
  }
  if (extra.length > 0) report.fixed += await deps.registry.run(channel.id, "reconcile.markDeleted", { extra });
  return report;
}

/**
 * Index rows the walk did not see. Each is confirmed with the homeserver, so a message sent
 * while the walk ran (or in a part of a huge room the walk did not reach) is not called extra.
 */
async function findExtra(deps: ReconcileDeps, channel: ChannelRow, live: Set<string>, redacted: Set<string>): Promise<ExtraEntry[]> {
  const rows = await deliveredMessageEvents(deps.sql, channel.id);
  const extra: ExtraEntry[] = [];
  for (const row of rows) {
    if (live.has(row.matrix_event_id)) continue;
    const entry = { message_id: row.id, seq: Number(row.seq), matrix_event_id: row.matrix_event_id };
    if (redacted.has(row.matrix_event_id)) {
      extra.push({ ...entry, reason: "redacted" });
      continue;
    }
    const state = await eventState(deps.matrix, channel.matrix_room_id, row.matrix_event_id);
    if (state !== "live") extra.push({ ...entry, reason: state });
  }
  return extra;
}

async function eventState(matrix: MatrixBackend, roomId: string, eventId: string): Promise<"live" | "absent" | "redacted"> {
  try {
    const event = await matrix.getEvent(roomId, eventId);
    if (event.type !== "m.room.message") return "absent";
    return Object.keys(event.content).length === 0 ? "redacted" : "live";
  } catch (err) {
    if (err instanceof MatrixError && (err.errcode === "M_NOT_FOUND" || err.httpStatus === 404)) return "absent";
    throw err;
  }
}

async function indexMissing(deps: ReconcileDeps, channelId: string, events: MatrixEvent[]): Promise<number> {
  await enqueueEvents(deps.sql, events);
  let fixed = 0;
  for (const event of events) {
    try {
      await deps.registry.ingestAll(channelId, [event]);
      if (await findMessageByEvent(deps.sql, event.event_id)) fixed++;
    } catch (err) {
      // It stays in the inbox; the service's next drain retries it.
      deps.log.warn({ channel_id: channelId, event_id: event.event_id, err: err instanceof Error ? err.message : String(err) }, "could not index a missing message");
    }
  }
  return fixed;
}
