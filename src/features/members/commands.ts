import type { Tx } from "../../store/db.ts";
import type { ChannelContext } from "../../channel/context.ts";
import { Subjects } from "../../events/model.ts";
import { findMember, recordDeparture, updateMemberRights, type AppliedRights } from "../../store/members.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import type { MemberRow } from "../../store/rows.ts";
import { eachFlag, RIGHT_FLAGS, type MemberRights } from "../../domain/member-rights.ts";
import { notFound } from "../../errors.ts";
import { toMemberView } from "./model.ts";
import { actingUser, kickLevel, powerForRole, readPowerLevels, setUserPower } from "./power.ts";
import { invite } from "./invite.ts";

/** Leaves (memberId is the caller) or kicks, in Matrix first, then in the index. */
async function removeMember(ctx: ChannelContext, cmd: { callerId: string; memberId: string; reason: string | null }): Promise<MemberRow> {
  const target = await findMember(ctx.deps.sql, ctx.channelId, cmd.memberId);
  if (!target) throw notFound("member");
  const kicked = cmd.callerId !== cmd.memberId;
  const { matrix } = ctx.deps;
  await ctx.matrixCall(async () => {
    if (!kicked) return matrix.leave(ctx.room, target.matrix_user_id);
    const levels = await readPowerLevels(ctx);
    const kicker = actingUser(ctx, levels, cmd.callerId, kickLevel(levels), target.matrix_user_id);
    await matrix.kick(ctx.room, kicker, target.matrix_user_id, cmd.reason ?? undefined);
  });
  const left = await ctx.deps.sql.begin(async (tx) => {
    const metadata = cmd.reason ? { via: "api", reason: cmd.reason } : { via: "api" };
    const row = await recordDeparture(tx, { channelId: ctx.channelId, memberId: cmd.memberId, actorId: cmd.callerId, kicked, metadata });
    return row!;
  });
  announceRemoval(ctx, left, kicked ? cmd.callerId : null, "api");
  return left;
}

/**
 * member.left on the WebSocket, and messaging.member.left or .kicked on NATS. The member's own
 * sockets get that frame last, then are closed: they no longer may read.
 */
export function announceRemoval(ctx: ChannelContext, member: MemberRow, kickedBy: string | null, via: "api" | "matrix"): void {
  const at = member.left_at?.getTime() ?? Date.now();
  // The frame first, then the sockets close, then NATS: the member's own sockets see why they end.
  void ctx.announce(kickedBy ? { type: "member.left", member: toMemberView(member), kicked_by: kickedBy } : { type: "member.left", member: toMemberView(member) });
  ctx.deps.sockets?.revoke(ctx.channelId, member.member_id, kickedBy ? "kicked" : "left");
  if (kickedBy) {
    ctx.deps.events.publish(Subjects.memberKicked, {
      event_id: `member.kicked:${member.id}:${at}`,
      channel_id: ctx.channelId,
      member_id: member.member_id,
      kicked_by: kickedBy,
      via,
    });
  } else {
    ctx.deps.events.publish(Subjects.memberLeft, { event_id: `member.left:${member.id}:${at}`, channel_id: ctx.channelId, member_id: member.member_id, via });
  }
}

export type MemberChange = Partial<MemberRights>;

/** Changes role and capabilities; a role with another power level is mirrored into m.room.power_levels. */
async function updateMember(ctx: ChannelContext, cmd: { callerId: string; memberId: string; change: MemberChange }): Promise<MemberRow> {
  const target = await findMember(ctx.deps.sql, ctx.channelId, cmd.memberId);
  if (!target) throw notFound("member");
  const rights: AppliedRights = {
    role: cmd.change.role ?? target.role,
    ...eachFlag((flag) => cmd.change[flag] ?? target[flag]),
    matrix_power_level: powerForRole(cmd.change.role ?? target.role),
  };
  if (rights.matrix_power_level !== target.matrix_power_level) await setUserPower(ctx, target.matrix_user_id, rights.matrix_power_level);
  return applyRights(ctx, target, rights, cmd.callerId, "api");
}

const RIGHTS = ["role", ...RIGHT_FLAGS, "matrix_power_level"] as const;

/** Writes new rights with their audit row, then tells the WebSocket and NATS. */
export async function applyRights(ctx: ChannelContext, target: MemberRow, rights: AppliedRights, actorId: string, via: "api" | "matrix"): Promise<MemberRow> {
  const updated = await ctx.deps.sql.begin((tx) => writeRights(ctx, tx, target, rights, actorId, via));
  announceRights(ctx, target, updated, actorId, via);
  return updated;
}

export async function writeRights(ctx: ChannelContext, tx: Tx, target: MemberRow, rights: AppliedRights, actorId: string, via: "api" | "matrix"): Promise<MemberRow> {
  const changed = RIGHTS.filter((k) => rights[k] !== target[k]);
  const row = await updateMemberRights(tx, ctx.channelId, target.member_id, rights);
  await recordChannelEvent(tx, {
    channel_id: ctx.channelId,
    event_type: "member.role_changed",
    actor_id: actorId,
    target_id: target.member_id,
    metadata: {
      via,
      from: Object.fromEntries(changed.map((k) => [k, target[k]])),
      to: Object.fromEntries(changed.map((k) => [k, rights[k]])),
    },
  });
  return row;
}

export function announceRights(ctx: ChannelContext, target: MemberRow, updated: MemberRow, actorId: string, via: "api" | "matrix"): void {
  void ctx.announce({ type: "member.updated", member: toMemberView(updated), updated_by: actorId });
  if (target.can_read && !updated.can_read) ctx.deps.sockets?.revoke(ctx.channelId, updated.member_id, "can_read revoked");
  ctx.deps.events.publish(Subjects.memberUpdated, {
    event_id: `member.updated:${updated.id}:${Bun.randomUUIDv7()}`,
    channel_id: ctx.channelId,
    member_id: updated.member_id,
    updated_by: actorId,
    role: updated.role,
    previous_role: target.role,
    ...eachFlag((flag) => updated[flag]),
    matrix_power_level: updated.matrix_power_level,
    via,
  });
}

export const memberCommands = { "members.invite": invite, "members.remove": removeMember, "members.update": updateMember };

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends MemberCommands {}
}
type MemberCommands = typeof memberCommands;
