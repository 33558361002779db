import { t } from "elysia";
import type { Static, TBoolean } from "@sinclair/typebox";
import { senderTypeOf } from "./ids.ts";

/** The one record of what a member may do; every other shape (rows, bodies, views, events) is made from it. */

export const Role = t.Union([t.Literal("owner"), t.Literal("admin"), t.Literal("member"), t.Literal("guest"), t.Literal("agent")]);
export type Role = Static<typeof Role>;

export const RIGHT_FLAGS = ["can_read", "can_write", "can_invite", "can_kick", "can_create_tasks"] as const;
export type RightFlag = (typeof RIGHT_FLAGS)[number];

/** What a member may do when the inviter does not say. */
export const DEFAULT_FLAGS: Record<RightFlag, boolean> = { can_read: true, can_write: true, can_invite: false, can_kick: false, can_create_tasks: false };

/** One schema per flag, in the record's order. */
export function eachFlag<T>(schema: (flag: RightFlag) => T): Record<RightFlag, T> {
  return Object.fromEntries(RIGHT_FLAGS.map((flag) => [flag, schema(flag)])) as Record<RightFlag, T>;
}

export const RightFlags = eachFlag((): TBoolean => t.Boolean());

export const MemberRights = t.Object({ role: Role, ...RightFlags });
export type MemberRights = Static<typeof MemberRights>;

/** The role an id gets when none is given: agents are agents, everyone else a member. */
export function defaultRole(memberId: string): Role {
  return memberId.startsWith("agent:") ? "agent" : "member";
}

/** The rights asked for, the defaults for the rest. */
export function rightsOrDefaults(memberId: string, asked: Partial<MemberRights> | null | undefined): MemberRights {
  return { role: asked?.role ?? defaultRole(memberId), ...eachFlag((flag) => asked?.[flag] ?? DEFAULT_FLAGS[flag]) };
}

/** An owner may do everything. */
export const OWNER_RIGHTS: MemberRights = { role: "owner", ...eachFlag(() => true) };

/** Only the rights of a row that holds more. */
export function rightsOf(row: MemberRights): MemberRights {
  return { role: row.role, ...eachFlag((flag) => row[flag]) };
}

/**
 * A membership as upsertMember writes it: the one place a new or returning member is spelled
 * out, whether created with a channel, invited, joined on a first write or from Matrix.
 */
export function membershipRecord(m: {
  channelId: string;
  memberId: string;
  matrixUserId: string;
  rights: MemberRights;
  powerLevel: number;
  invitedBy: string | null;
  displayName?: string | null;
}) {
  return {
    channel_id: m.channelId,
    member_id: m.memberId,
    member_type: senderTypeOf(m.memberId),
    matrix_user_id: m.matrixUserId,
    ...rightsOf(m.rights),
    matrix_power_level: m.powerLevel,
    invited_by: m.invitedBy,
    ...(m.displayName === undefined ? {} : { display_name: m.displayName }),
  };
}
