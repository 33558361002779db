import type { Sql, Tx } from "./db.ts";
import type { LegacyCallChange, ParsedMembership } from "../domain/calls.ts";

export interface CallMembershipRow {
  channel_id: string;
  state_type: string;
  state_key: string;
  device_id: string;
  call_id: string;
  application: string;
  scope: string | null;
  matrix_user_id: string;
  member_id: string;
  matrix_event_id: string;
  joined_at: Date;
  expires_at: Date;
}

export interface LegacyCallRow {
  channel_id: string;
  call_id: string;
  state: "ringing" | "active" | "ended";
  caller_id: string | null;
  callee_id: string | null;
  is_video: boolean;
  invited_at: Date | null;
  rings_until: Date | null;
  answered_at: Date | null;
  ended_at: Date | null;
  end_reason: string | null;
  updated_at: Date;
}

export interface CallSlot {
  channelId: string;
  stateType: string;
  stateKey: string;
  matrixUserId: string;
  memberId: string;
  eventId: string;
  memberships: ParsedMembership[];
}

/** A call-member state event: its slot's rows become the event's memberships (none when it is empty). */
export async function replaceCallSlot(tx: Tx, slot: CallSlot): Promise<void> {
  await tx`
    delete from call_memberships
    where channel_id = ${slot.channelId} and state_type = ${slot.stateType} and state_key = ${slot.stateKey}`;
  if (slot.memberships.length === 0) return;
  const rows = slot.memberships.map((m) => ({
    channel_id: slot.channelId,
    state_type: slot.stateType,
    state_key: slot.stateKey,
    device_id: m.deviceId,
    call_id: m.callId,
    application: m.application,
    scope: m.scope,
    matrix_user_id: slot.matrixUserId,
    member_id: slot.memberId,
    matrix_event_id: slot.eventId,
    joined_at: new Date(m.joinedAt),
    expires_at: new Date(m.expiresAt),
  }));
  await tx`insert into call_memberships ${tx(rows)} on conflict do nothing`;
}

/** The memberships that count at `now` (not expired), earliest joined first. */
export async function activeCallMemberships(sql: Sql | Tx, channelId: string, now: Date): Promise<CallMembershipRow[]> {
  return sql<CallMembershipRow[]>`
    select * from call_memberships where channel_id = ${channelId} and expires_at > ${now}
    order by joined_at, member_id, device_id, call_id`;
}

/** The channel's latest legacy calls, most recently changed first. */
export async function recentLegacyCalls(sql: Sql | Tx, channelId: string, limit: number): Promise<LegacyCallRow[]> {
  return sql<LegacyCallRow[]>`
    select * from legacy_calls where channel_id = ${channelId} order by updated_at desc, call_id limit ${limit}`;
}

/** The next instant after `now` at which the channel's call state changes by itself (an expiry, an unanswered invite), or null. */
export async function nextCallDeadline(sql: Sql | Tx, channelId: string, now: Date): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`
    select least(
      (select min(expires_at) from call_memberships where channel_id = ${channelId} and expires_at > ${now}),
      (select min(rings_until) from legacy_calls where channel_id = ${channelId} and state = 'ringing' and rings_until > ${now})
    ) as at`;
  return row?.at ?? null;
}

/**
 * An m.call.* event: invite rings, answer makes it active, hangup ends it, reject ends a ringing
 * call. An answer for a call whose invite was never seen starts it as active; a hangup or
 * reject of an unknown call changes nothing. Answers whether a row changed.
 */
export async function applyLegacyCallChange(tx: Tx, channelId: string, change: LegacyCallChange, senderId: string, inviteeId: string | null, at: Date): Promise<boolean> {
  switch (change.kind) {
    case "invite": {
      const rows = await tx`
        insert into legacy_calls (channel_id, call_id, state, caller_id, callee_id, is_video, invited_at, rings_until, updated_at)
        values (${channelId}, ${change.callId}, 'ringing', ${senderId}, ${inviteeId}, ${change.isVideo}, ${at}, ${new Date(change.ringsUntil)}, ${at})
        on conflict (channel_id, call_id) do nothing returning 1`;
      return rows.length > 0;
    }
    case "answer": {
      const rows = await tx`
        insert into legacy_calls (channel_id, call_id, state, callee_id, answered_at, updated_at)
        values (${channelId}, ${change.callId}, 'active', ${senderId}, ${at}, ${at})
        on conflict (channel_id, call_id) do update
          set state = 'active', answered_at = excluded.answered_at, updated_at = excluded.updated_at,
              callee_id = case when legacy_calls.caller_id = ${senderId} then legacy_calls.callee_id else ${senderId} end
          where legacy_calls.state = 'ringing'
        returning 1`;
      return rows.length > 0;
    }
    case "hangup":
    case "reject": {
      const reason = change.kind === "hangup" ? change.reason : "rejected";
      const rows = await tx`
        update legacy_calls set state = 'ended', ended_at = ${at}, end_reason = ${reason}, updated_at = ${at}
        where channel_id = ${channelId} and call_id = ${change.callId}
          and (state = 'ringing' or (state = 'active' and ${change.kind} = 'hangup'))
        returning 1`;
      return rows.length > 0;
    }
  }
}
