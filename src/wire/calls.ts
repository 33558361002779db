import { t } from "elysia";
import type { Static } from "@sinclair/typebox";

/** One device of a member in a MatrixRTC call (an org.matrix.msc3401.call.member membership that has not expired). */
export const CallParticipantView = t.Object({
  member_id: t.String({ description: "The DAARION member id (user:…, agent:…, or matrix:@… for users outside DAARION)" }),
  matrix_user_id: t.String(),
  device_id: t.String(),
  call_id: t.String({ description: `The MatrixRTC call id ("" is the room's call)` }),
  application: t.String({ description: "m.call for calls" }),
  since: t.String({ format: "date-time", description: "When this device joined (created_ts, else the event's time)" }),
  expires_at: t.String({ format: "date-time", description: "When the membership stops counting unless the client renews it" }),
});

/** A legacy 1:1 VoIP call (m.call.invite / answer / hangup / reject). */
export const LegacyCallView = t.Object({
  call_id: t.String(),
  state: t.Union([t.Literal("ringing"), t.Literal("active"), t.Literal("ended")]),
  caller_id: t.Nullable(t.String({ description: "Who sent the invite (null when only the answer was seen)" })),
  callee_id: t.Nullable(t.String({ description: "Who answered, else the invite's invitee" })),
  is_video: t.Boolean(),
  since: t.String({ format: "date-time", description: "When the call entered its current state" }),
  invited_at: t.Nullable(t.String({ format: "date-time" })),
  answered_at: t.Nullable(t.String({ format: "date-time" })),
  ended_at: t.Nullable(t.String({ format: "date-time" })),
  end_reason: t.Nullable(t.String({ description: "The hangup's reason, rejected, or invite_timeout for an invite nobody answered in its lifetime" })),
});

/** Whether a call is on in a channel, who is in it, and where to join it in a Matrix client. */
export const CallView = t.Object({
  channel_id: t.String({ format: "uuid" }),
  active: t.Boolean({ description: "A MatrixRTC call has a participant, or a legacy call rings or is active" }),
  participant_count: t.Integer({ description: "Distinct members in a call (a member on two devices counts once)" }),
  member_ids: t.Array(t.String(), { description: "Those members, earliest joined first" }),
  since: t.Nullable(t.String({ format: "date-time", description: "When the earliest of them joined" })),
  participants: t.Array(CallParticipantView),
  legacy_calls: t.Array(LegacyCallView, { description: "The channel's latest legacy 1:1 calls, most recently changed first (at most 10)" }),
  matrix_room_id: t.String(),
  join_url: t.String({ description: "A matrix.to link to the room: Element opens it, and joins the call from there" }),
  matrix_uri: t.String({ description: "The same room as a matrix: URI (MSC2312)" }),
});
export type CallView = Static<typeof CallView>;

/** TURN credentials from the homeserver (GET /_matrix/client/v3/voip/turnServer), for the caller's Matrix user. */
export const TurnServerView = t.Object({
  username: t.String({ description: "TURN REST username: `<expiry unix seconds>:<matrix user id>`" }),
  password: t.String({ description: "base64 HMAC-SHA1 of the username with the TURN shared secret" }),
  uris: t.Array(t.String(), { examples: [["turn:turn.example.org:3478?transport=udp"]] }),
  ttl: t.Integer({ description: "Seconds the credentials are valid" }),
});
export type TurnServerView = Static<typeof TurnServerView>;
