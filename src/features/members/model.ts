import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { DAARION_ID_PATTERN, MATRIX_MEMBER_PATTERN } from "../../domain/ids.ts";
import type { ChannelEventRow } from "../../store/channel-events.ts";
import { DEFAULT_FLAGS, eachFlag, Role } from "../../domain/member-rights.ts";

export { Role };
export { MemberView } from "../../wire/views.ts";
export { toMemberView } from "../../store/views.ts";

export const InviteMemberBody = t.Object(
  {
    member_id: t.Union(
      [
        t.String({ pattern: DAARION_ID_PATTERN, examples: ["user:alice", "agent:sofia"] }),
        t.String({
          pattern: MATRIX_MEMBER_PATTERN,
          description: "A Matrix user outside DAARION: invited in Matrix, a member once they accept",
          examples: ["matrix:@bob:daarion.city"],
        }),
      ],
    ),
    role: t.Optional(Role),
    ...eachFlag((flag) => t.Optional(t.Boolean({ default: DEFAULT_FLAGS[flag] }))),
  },
  { additionalProperties: false },
);
export type InviteMemberBody = Static<typeof InviteMemberBody>;


export const PendingInviteView = t.Object({
  status: t.Literal("invited"),
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  matrix_user_id: t.String(),
  role: Role,
});

export const MemberParams = t.Object({
  id: t.String({ format: "uuid" }),
  member_id: t.Union([t.String({ pattern: DAARION_ID_PATTERN }), t.String({ pattern: MATRIX_MEMBER_PATTERN })]),
});

export const RemoveMemberQuery = t.Object({
  reason: t.Optional(t.String({ maxLength: 500, description: "Shown in Matrix clients with the kick." })),
});

export const UpdateMemberBody = t.Object(
  {
    role: t.Optional(Role),
    ...eachFlag(() => t.Optional(t.Boolean())),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateMemberBody = Static<typeof UpdateMemberBody>;

export const RemovedMemberView = t.Object({
  channel_id: t.String({ format: "uuid" }),
  member_id: t.String(),
  status: t.Union([t.Literal("left"), t.Literal("kicked")]),
  left_at: t.String({ format: "date-time" }),
});

export const ChannelEventsQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 200, default: 50 })),
  cursor: t.Optional(t.String({ pattern: "^[0-9]{1,18}$", description: "X-Next-Cursor of the previous page" })),
  type: t.Optional(t.String({ pattern: "^[a-z]+\\.[a-z_]+$", examples: ["member.kicked"] })),
});

export const ChannelEventView = t.Object({
  id: t.String({ format: "uuid" }),
  channel_id: t.String({ format: "uuid" }),
  event_type: t.String({ examples: ["member.kicked", "member.role_changed", "message.pinned", "channel.archived"] }),
  actor_id: t.String(),
  target_id: t.Nullable(t.String()),
  metadata: t.Nullable(t.Record(t.String(), t.Unknown())),
  created_at: t.String({ format: "date-time" }),
});
export type ChannelEventView = Static<typeof ChannelEventView>;

export function toChannelEventView(row: ChannelEventRow): ChannelEventView {
  return {
    id: row.id,
    channel_id: row.channel_id,
    event_type: row.event_type,
    actor_id: row.actor_id,
    target_id: row.target_id,
    metadata: row.metadata,
    created_at: row.created_at.toISOString(),
  };
}
