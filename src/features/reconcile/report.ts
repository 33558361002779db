import type { ChannelReconciliation, ReconcileSummary } from "./reconcile.ts";

/** Human-readable lines for one channel: a header, then one line per difference. */
export function channelReportLines(r: ChannelReconciliation, fix: boolean): string[] {
  const state = r.missing.length + r.extra.length === 0 ? "consistent" : `${r.missing.length} missing, ${r.extra.length} extra${fix ? `, ${r.fixed} fixed` : ""}`;
  const lines = [`channel ${r.slug} ${r.channel_id} room ${r.room_id}: ${state}`];
  for (const m of r.missing) {
    lines.push(`  missing  ${m.event_id}  from ${m.sender} at ${new Date(m.origin_server_ts).toISOString()}`);
  }
  for (const e of r.extra) {
    lines.push(`  extra    ${e.matrix_event_id}  message ${e.message_id} seq ${e.seq} (${e.reason === "redacted" ? "redacted in Matrix" : "not in the room"})`);
  }
  if (r.note) lines.push(`  note: ${r.note}`);
  return lines;
}

/** The last line of a run, for scripts: `{"channels":N,"missing":N,"extra":N,"fixed":N}`. */
export function summaryLine(s: ReconcileSummary): string {
  return JSON.stringify({ channels: s.channels, missing: s.missing, extra: s.extra, fixed: s.fixed });
}

/** 0 when the index matches (or every difference was repaired), 1 when differences remain. */
export function exitCodeFor(s: ReconcileSummary, fix: boolean): 0 | 1 {
  const found = s.missing + s.extra;
  if (found === 0) return 0;
  return fix && s.fixed >= found ? 0 : 1;
}
