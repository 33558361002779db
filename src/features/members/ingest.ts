import type { Ingester } from "../../actors/ingest-routes.ts";
import { consumeInboxEvent } from "../../store/inbox.ts";
import { fromMatrixUserId, isServiceUser } from "../../domain/ids.ts";
import type { MemberRow, Role } from "../../store/rows.ts";
import { applyRights } from "./commands.ts";
import { creatorOf, powerOf } from "./power.ts";
import { listCurrentMembers } from "../../store/members.ts";

/** The role a Matrix power level means; below 50, an owner or admin goes back to member (or agent). */
function roleFor(level: number, member: MemberRow): Role {
  if (level >= 100) return "owner";
  if (level >= 50) return "admin";
  if (member.role === "owner" || member.role === "admin") return member.member_type === "agent" ? "agent" : "member";
  return member.role;
}

/**
 * Power levels changed: the index is reconciled with the room's *current* power levels, not the
 * event's content, so an older event (the echo of our own change, overtaken by the next one)
 * never undoes a newer change. Members whose power differs get the matching role; our own
 * changes find the index already equal and are just consumed.
 */
export const ingestPowerLevels: Ingester = async (ctx, event) => {
  const { sql, matrix } = ctx.deps;
  const creator = creatorOf(ctx);
  const current = (await matrix.getState(ctx.room, "m.room.power_levels", "")) ?? event.content;
  const changes: Array<{ member: MemberRow; level: number }> = [];
  for (const member of await listCurrentMembers(sql, ctx.channelId)) {
    // The creator's power is the room's highest whether listed (v10) or implied (v12).
    if (member.matrix_user_id === creator || isServiceUser(member.matrix_user_id, matrix.serverName)) continue;
    const level = powerOf(current, member.matrix_user_id);
    if (level !== member.matrix_power_level) changes.push({ member, level });
  }
  if (changes.length === 0) {
    await consumeInboxEvent(sql, event.event_id);
    return;
  }
  const actor = fromMatrixUserId(event.sender, matrix.serverName).id;
  for (const [i, { member, level }] of changes.entries()) {
    const last = i === changes.length - 1;
    await applyRights(ctx, member, { ...member, role: roleFor(level, member), matrix_power_level: level }, actor, "matrix", last ? (tx) => consumeInboxEvent(tx, event.event_id) : undefined);
  }
};
