import type { ServiceDeps } from "../deps.ts";
import type { Tx } from "../../store/db.ts";
import type { ActorContext } from "../../actors/context.ts";
import { Subjects } from "../../events/model.ts";
import { findMember, markLeft, updateMemberRights, type MemberRights } from "../../store/members.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import type { MemberRow, Role } from "../../store/rows.ts";
import { notFound } from "../../errors.ts";
import { toMemberView } from "./model.ts";
import { actingUser, kickLevel, powerForRole, readPowerLevels, setUserPower } from "./power.ts";

/** Leaves (memberId is the caller) or kicks, in Matrix first, then in the index. */
export function removeMember(
  deps: ServiceDeps,
  cmd: { channelId: string; callerId: string; memberId: string; reason: string | null },
): Promise<MemberRow> {
  return deps.registry.get(cmd.channelId).exec(async (ctx) => {
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
      const row = await markLeft(tx, ctx.channelId, cmd.memberId);
      await recordChannelEvent(tx, {
        channel_id: ctx.channelId,
        event_type: kicked ? "member.kicked" : "member.left",
        actor_id: cmd.callerId,
        target_id: cmd.memberId,
        metadata: cmd.reason ? { via: "api", reason: cmd.reason } : { via: "api" },
      });
      return row!;
    });
    announceRemoval(ctx, left, kicked ? cmd.callerId : null, "api");
    return left;
  });
}

/**
 * member.left on the WebSocket, and messaging.member.left or .kicked on NATS. The member's own
 * sockets get that frame last, then are closed: they no longer may read.
 */
export function announceRemoval(ctx: ActorContext, member: MemberRow, kickedBy: string | null, via: "api" | "matrix"): void {
  const at = member.left_at?.getTime() ?? Date.now();
  ctx.deps.broadcast(ctx.channelId, kickedBy ? { type: "member.left", member: toMemberView(member), kicked_by: kickedBy } : { type: "member.left", member: toMemberView(member) });
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

export interface MemberChange {
  role?: Role;
  can_read?: boolean;
  can_write?: boolean;
  can_invite?: boolean;
  can_kick?: boolean;
  can_create_tasks?: boolean;
}

/** Changes role and capabilities; a role with another power level is mirrored into m.room.power_levels. */
export function updateMember(deps: ServiceDeps, cmd: { channelId: string; callerId: string; memberId: string; change: MemberChange }): Promise<MemberRow> {
  return deps.registry.get(cmd.channelId).exec(async (ctx) => {
    const target = await findMember(ctx.deps.sql, ctx.channelId, cmd.memberId);
    if (!target) throw notFound("member");
    const rights: MemberRights = {
      role: cmd.change.role ?? target.role,
      can_read: cmd.change.can_read ?? target.can_read,
      can_write: cmd.change.can_write ?? target.can_write,
      can_invite: cmd.change.can_invite ?? target.can_invite,
      can_kick: cmd.change.can_kick ?? target.can_kick,
      can_create_tasks: cmd.change.can_create_tasks ?? target.can_create_tasks,
      matrix_power_level: powerForRole(cmd.change.role ?? target.role),
    };
    if (rights.matrix_power_level !== target.matrix_power_level) await setUserPower(ctx, target.matrix_user_id, rights.matrix_power_level);
    return applyRights(ctx, target, rights, cmd.callerId, "api");
  });
}

const RIGHTS = ["role", "can_read", "can_write", "can_invite", "can_kick", "can_create_tasks", "matrix_power_level"] as const;

/** Writes new rights with their audit row, then tells the WebSocket and NATS. */
export async function applyRights(
  ctx: ActorContext,
  target: MemberRow,
  rights: MemberRights,
  actorId: string,
  via: "api" | "matrix",
  consume?: (tx: Tx) => Promise<void>,
): Promise<MemberRow> {
  const changed = RIGHTS.filter((k) => rights[k] !== target[k]);
  const updated = await ctx.deps.sql.begin(async (tx) => {
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
    await consume?.(tx);
    return row;
  });
  ctx.deps.broadcast(ctx.channelId, { type: "member.updated", member: toMemberView(updated), updated_by: actorId });
  if (target.can_read && !updated.can_read) ctx.deps.sockets?.revoke(ctx.channelId, updated.member_id, "can_read revoked");
  ctx.deps.events.publish(Subjects.memberUpdated, {
    event_id: `member.updated:${updated.id}:${Bun.randomUUIDv7()}`,
    channel_id: ctx.channelId,
    member_id: updated.member_id,
    updated_by: actorId,
    role: updated.role,
    previous_role: target.role,
    can_read: updated.can_read,
    can_write: updated.can_write,
    can_invite: updated.can_invite,
    can_kick: updated.can_kick,
    can_create_tasks: updated.can_create_tasks,
    matrix_power_level: updated.matrix_power_level,
    via,
  });
  return updated;
}
