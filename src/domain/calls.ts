/**
 * Call state in Matrix, read without I/O: MatrixRTC memberships (MSC3401/MSC4143 state events)
 * and legacy 1:1 VoIP events (m.call.*). Shapes as matrix-js-sdk's MatrixRTC code reads them
 * (src/matrixrtc/CallMembership.ts, membershipData/session.ts).
 */

/** The MatrixRTC membership state event types: the unstable name Element Call sends, and the stable one. */
export const CALL_MEMBER_TYPES = ["org.matrix.msc3401.call.member", "m.call.member"] as const;
/** Legacy 1:1 VoIP timeline events that change a call's state (candidates, negotiate and select_answer do not). */
/**
 * The power levels' `events` of a new channel room: Synapse's defaults for its presets, and
 * call membership open to every member (power 0), as Element sets it when a room enables
 * calls, so members join a channel's call from Element without being moderators. It is
 * room state, which otherwise needs state_default (50).
 */
export const CHANNEL_ROOM_EVENT_POWER: Record<string, number> = {
  "m.room.name": 50,
  "m.room.power_levels": 100,
  "m.room.history_visibility": 100,
  "m.room.canonical_alias": 50,
  "m.room.avatar": 50,
  "m.room.tombstone": 100,
  "m.room.server_acl": 100,
  "m.room.encryption": 100,
  ...Object.fromEntries(CALL_MEMBER_TYPES.map((type) => [type, 0])),
};

export const LEGACY_CALL_TYPES = ["m.call.invite", "m.call.answer", "m.call.hangup", "m.call.reject"] as const;

/** matrix-js-sdk's DEFAULT_EXPIRE_DURATION: a session membership without `expires` lasts 4 hours from its creation. */
export const DEFAULT_MEMBERSHIP_EXPIRY_MS = 4 * 60 * 60 * 1000;
/** A legacy invite without `lifetime` rings this long (the spec's recommended 60 s is what clients send). */
export const DEFAULT_INVITE_LIFETIME_MS = 60_000;

export interface ParsedMembership {
  deviceId: string;
  callId: string;
  application: string;
  scope: string | null;
  /** When the member joined: created_ts, else the event's origin_server_ts. */
  joinedAt: number;
  /** When the membership stops counting, absent a refresh. */
  expiresAt: number;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/**
 * The memberships a call-member state event holds, whichever shape it has:
 * - per device (MSC4143 as Element Call sends it now): state key `_@user:server_DEVICE…`,
 *   content `{application, call_id, device_id, focus_active, foci_preferred, expires?, created_ts?}`;
 * - per user (the first MSC3401 session shape): state key = the user id, content
 *   `{memberships: [{application, call_id, device_id, expires?, expires_ts?, created_ts?}, …]}`;
 * - empty content (or `memberships: []`): the slot left the call.
 * Entries without a string device_id or call_id are not memberships and are skipped. Every
 * application counts (its name is kept: m.call is a call, others are other RTC sessions).
 */
export function parseCallMembers(content: Record<string, unknown>, originServerTs: number): ParsedMembership[] {
  const entries = Array.isArray(content.memberships) ? content.memberships : "device_id" in content ? [content] : [];
  const out: ParsedMembership[] = [];
  for (const raw of entries) {
    if (!raw || typeof raw !== "object") continue;
    const m = raw as Record<string, unknown>;
    const deviceId = str(m.device_id);
    const callId = str(m.call_id);
    if (deviceId === null || callId === null) continue;
    const joinedAt = num(m.created_ts) ?? originServerTs;
    const expiresAt = num(m.expires_ts) ?? joinedAt + (num(m.expires) ?? DEFAULT_MEMBERSHIP_EXPIRY_MS);
    out.push({ deviceId, callId, application: str(m.application) ?? "m.call", scope: str(m.scope), joinedAt, expiresAt });
  }
  return out;
}

export type LegacyCallChange =
  | { kind: "invite"; callId: string; invitee: string | null; isVideo: boolean; ringsUntil: number }
  | { kind: "answer"; callId: string }
  | { kind: "hangup"; callId: string; reason: string }
  | { kind: "reject"; callId: string };

/** What an m.call.* event does to its call; null for one without a call_id. */
export function legacyCallChange(type: string, content: Record<string, unknown>, originServerTs: number): LegacyCallChange | null {
  const callId = str(content.call_id);
  if (callId === null) return null;
  switch (type) {
    case "m.call.invite": {
      const sdp = str((content.offer as Record<string, unknown> | undefined)?.sdp) ?? "";
      const lifetime = num(content.lifetime) ?? DEFAULT_INVITE_LIFETIME_MS;
      return { kind: "invite", callId, invitee: str(content.invitee), isVideo: /\bm=video\b/.test(sdp), ringsUntil: originServerTs + lifetime };
    }
    case "m.call.answer":
      return { kind: "answer", callId };
    case "m.call.hangup":
      return { kind: "hangup", callId, reason: str(content.reason) ?? "user_hangup" };
    case "m.call.reject":
      return { kind: "reject", callId };
    default:
      return null;
  }
}
