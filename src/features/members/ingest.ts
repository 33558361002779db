import { ignored, indexed, type EventHandler } from "../../channel/handlers.ts";
import { announceJoin } from "../../channel/announce.ts";
import { fromMatrixUserId, isServiceUser } from "../../domain/ids.ts";
import { membershipRecord, rightsOrDefaults } from "../../domain/member-rights.ts";
import type { MemberRow, Role } from "../../store/rows.ts";
import { pendingInvite } from "../../store/channels.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import { findMember, listCurrentMembers, recordDeparture, upsertMember } from "../../store/members.ts";
import { announceRemoval, announceRights, writeRights } from "./commands.ts";
import { creatorOf, powerOf } from "./power.ts";

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
const powerLevels: EventHandler = {
  kinds: ["m.room.power_levels"],
  state: true,
  async handle(ctx, event) {
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
    if (changes.length === 0) return ignored();
    const actor = fromMatrixUserId(event.sender, matrix.serverName).id;
    return indexed(
      async (tx) => {
        const updated: MemberRow[] = [];
        for (const { member, level } of changes) {
          updated.push(await writeRights(ctx, tx, member, { ...member, role: roleFor(level, member), matrix_power_level: level }, actor, "matrix"));
        }
        return updated;
      },
      (updated) => updated.forEach((row, i) => announceRights(ctx, changes[i]!.member, row, actor, "matrix")),
    );
  },
};

/** Joins and leaves made in Matrix (by Element users, or kicks) update the member index. */
const memberships: EventHandler = {
  kinds: ["m.room.member"],
  state: true,
  async handle(ctx, event) {
    const { sql, matrix } = ctx.deps;
    const target = event.state_key;
    const membership = event.content.membership;
    if (!target || isServiceUser(target, matrix.serverName) || (membership !== "join" && membership !== "leave" && membership !== "ban")) return ignored();
    // A membership the room has moved past since (the echo of an invite's join that arrives
    // after a kick, say) must not undo the newer change: compare with the current state.
    const now = await matrix.getState(ctx.room, "m.room.member", target).catch(() => undefined);
    const inRoom = (m: unknown) => m === "join";
    if (now !== undefined && inRoom(now?.membership) !== inRoom(membership)) return ignored();
    const who = fromMatrixUserId(target, matrix.serverName);
    const actor = fromMatrixUserId(event.sender, matrix.serverName);
    const displayName = typeof event.content.displayname === "string" ? event.content.displayname : null;
    const current = await findMember(sql, ctx.channelId, who.id);
    if (membership === "join") {
      if (current) return ignored();
      const invite = await pendingInvite(sql, ctx.channelId, who.id);
      return indexed(
        async (tx) => {
          const row = await upsertMember(
            tx,
            membershipRecord({
              channelId: ctx.channelId,
              memberId: who.id,
              matrixUserId: target,
              rights: rightsOrDefaults(who.id, invite),
              powerLevel: 0,
              invitedBy: invite?.invited_by ?? null,
              displayName,
            }),
          );
          await recordChannelEvent(tx, { channel_id: ctx.channelId, event_type: "member.joined", actor_id: who.id, target_id: who.id, metadata: { via: "matrix" } });
          return row;
        },
        (member) => void announceJoin(ctx, member, "matrix"),
      );
    }
    if (!current) return ignored();
    const kicked = event.sender !== target;
    return indexed(
      (tx) => recordDeparture(tx, { channelId: ctx.channelId, memberId: who.id, actorId: actor.id, kicked, metadata: { via: "matrix", membership } }),
      (left) => {
        if (left) announceRemoval(ctx, left, kicked ? actor.id : null, "matrix");
      },
    );
  },
};

export const memberHandlers: EventHandler[] = [memberships, powerLevels];
