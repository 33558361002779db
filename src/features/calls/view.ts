import type { Sql, Tx } from "../../store/db.ts";
import type { ChannelRow } from "../../store/rows.ts";
import { activeCallMemberships, recentLegacyCalls, type CallMembershipRow, type LegacyCallRow } from "../../store/calls.ts";
import type { CallView } from "./model.ts";

/** How many legacy 1:1 calls the view lists. */
export const LEGACY_CALLS_SHOWN = 10;

/** The channel's call state at `now`: expired memberships and invites nobody answered in time no longer count. */
export async function readCallView(sql: Sql | Tx, channel: ChannelRow, now: Date): Promise<CallView> {
  const [memberships, legacy] = await Promise.all([activeCallMemberships(sql, channel.id, now), recentLegacyCalls(sql, channel.id, LEGACY_CALLS_SHOWN)]);
  return callView(channel, memberships, legacy, now);
}

export function callView(channel: ChannelRow, memberships: CallMembershipRow[], legacy: LegacyCallRow[], now: Date): CallView {
  const legacyCalls = legacy.map((row) => legacyCallView(row, now));
  const members: string[] = [];
  const since: number[] = [];
  const add = (memberId: string | null, at: number) => {
    if (memberId === null) return;
    if (!members.includes(memberId)) members.push(memberId);
    since.push(at);
  };
  for (const m of memberships) add(m.member_id, m.joined_at.getTime());
  for (const c of legacyCalls) {
    if (c.state === "ended") continue;
    // A ringing call has its caller in it; an answered one both parties.
    add(c.caller_id, Date.parse(c.invited_at ?? c.since));
    if (c.state === "active") add(c.callee_id, Date.parse(c.answered_at ?? c.since));
  }
  const target = channel.matrix_alias ?? channel.matrix_room_id;
  return {
    channel_id: channel.id,
    active: members.length > 0 || legacyCalls.some((c) => c.state !== "ended"),
    participant_count: members.length,
    member_ids: members,
    since: since.length > 0 ? new Date(Math.min(...since)).toISOString() : null,
    participants: memberships.map((m) => ({
      member_id: m.member_id,
      matrix_user_id: m.matrix_user_id,
      device_id: m.device_id,
      call_id: m.call_id,
      application: m.application,
      since: m.joined_at.toISOString(),
      expires_at: m.expires_at.toISOString(),
    })),
    legacy_calls: legacyCalls,
    matrix_room_id: channel.matrix_room_id,
    join_url: `https://matrix.to/#/${encodeURIComponent(target)}`,
    matrix_uri: channel.matrix_alias ? `matrix:r/${encodeURIComponent(channel.matrix_alias.slice(1))}` : `matrix:roomid/${encodeURIComponent(channel.matrix_room_id.slice(1))}`,
  };
}

function legacyCallView(row: LegacyCallRow, now: Date): CallView["legacy_calls"][number] {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  // An invite rings for its lifetime; unanswered by then, the call is over.
  const timedOut = row.state === "ringing" && row.rings_until !== null && row.rings_until.getTime() <= now.getTime();
  const endedAt = timedOut ? row.rings_until : row.ended_at;
  const state = timedOut ? "ended" : row.state;
  const since = state === "ended" ? endedAt : state === "active" ? row.answered_at : row.invited_at;
  return {
    call_id: row.call_id,
    state,
    caller_id: row.caller_id,
    callee_id: row.callee_id,
    is_video: row.is_video,
    since: (since ?? row.updated_at).toISOString(),
    invited_at: iso(row.invited_at),
    answered_at: iso(row.answered_at),
    ended_at: iso(endedAt),
    end_reason: timedOut ? "invite_timeout" : row.end_reason,
  };
}

/** What subscribers are told about: who is in which call since when, and the legacy calls' states (not expiry refreshes). */
export function callSignature(view: CallView): string {
  return JSON.stringify([
    view.participants.map((p) => [p.member_id, p.device_id, p.call_id, p.since]),
    view.legacy_calls.map((c) => [c.call_id, c.state, c.caller_id, c.callee_id]),
  ]);
}
