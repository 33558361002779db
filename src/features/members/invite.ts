import { Subjects } from "../../events/model.ts";
import type { ChannelContext } from "../../channel/context.ts";
import { findMember, upsertMember } from "../../store/members.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import { pendingInvite } from "../../store/channels.ts";
import type { MemberRow, Role } from "../../store/rows.ts";
import { membershipRecord, type MemberRights } from "../../domain/member-rights.ts";
import { conflict } from "../../errors.ts";
import { toMemberView } from "./model.ts";
import { setUserPower } from "./power.ts";

export interface InviteCommand extends MemberRights {
  inviterId: string;
  memberId: string;
}

/** An invitation a Matrix user from outside has yet to accept. */
export interface PendingInvite {
  status: "invited";
  channel_id: string;
  member_id: string;
  matrix_user_id: string;
  role: Role;
}

/** Invites a DAARION user or agent (a member at once), or a Matrix user from outside (pending until they join). */
export function invite(ctx: ChannelContext, cmd: InviteCommand): Promise<MemberRow | PendingInvite> {
  return cmd.memberId.startsWith("matrix:") ? inviteMatrixUser(ctx, cmd) : inviteVirtualUser(ctx, cmd);
}

async function inviteVirtualUser(ctx: ChannelContext, cmd: InviteCommand): Promise<MemberRow> {
  const { sql, matrix } = ctx.deps;
  if (await findMember(sql, ctx.channelId, cmd.memberId)) {
    throw conflict("ALREADY_MEMBER", `${cmd.memberId} is already a member of this channel`);
  }
  const inviter = ctx.matrixId(cmd.inviterId);
  const invitee = ctx.matrixId(cmd.memberId);
  await ctx.matrixCall(async () => {
    await matrix.ensureUser(invitee);
    await matrix.invite(ctx.room, inviter, invitee);
    // DAARION users and agents are virtual users of the service: they accept at once.
    await matrix.join(ctx.room, invitee);
  });
  const powerLevel = cmd.role === "owner" ? 100 : cmd.role === "admin" ? 50 : 0;
  // The role's power goes into the room too, so Matrix and the index agree on who may do what.
  if (powerLevel > 0) await setUserPower(ctx, invitee, powerLevel);
  const member = await sql.begin(async (tx) => {
    const row = await upsertMember(
      tx,
      membershipRecord({ channelId: ctx.channelId, memberId: cmd.memberId, matrixUserId: invitee, rights: cmd, powerLevel, invitedBy: cmd.inviterId }),
    );
    await recordChannelEvent(tx, {
      channel_id: ctx.channelId,
      event_type: "member.invited",
      actor_id: cmd.inviterId,
      target_id: cmd.memberId,
      metadata: { role: cmd.role },
    });
    return row;
  });
  await ctx.announce({ type: "member.joined", member: toMemberView(member) }, Subjects.memberInvited, {
    event_id: `member.invited:${member.id}:${member.joined_at.getTime()}`,
    channel_id: ctx.channelId,
    member_id: cmd.memberId,
    invited_by: cmd.inviterId,
    role: cmd.role,
  });
  return member;
}

async function inviteMatrixUser(ctx: ChannelContext, cmd: InviteCommand): Promise<PendingInvite> {
  const { sql, matrix } = ctx.deps;
  if (await findMember(sql, ctx.channelId, cmd.memberId)) {
    throw conflict("ALREADY_MEMBER", `${cmd.memberId} is already a member of this channel`);
  }
  const target = cmd.memberId.slice("matrix:".length);
  const answer: PendingInvite = { status: "invited", channel_id: ctx.channelId, member_id: cmd.memberId, matrix_user_id: target, role: cmd.role };
  const { inviterId: _inviter, memberId: _member, ...rights } = cmd;
  // A rerun (a retry after a crash lost the first answer) finds the same invitation still
  // pending: it answers that, and neither audits nor announces it a second time.
  const pending = await pendingInvite(sql, ctx.channelId, cmd.memberId);
  if (pending && pending.invited_by === cmd.inviterId && sameRights(pending, rights)) return answer;
  await ctx.matrixCall(() => matrix.invite(ctx.room, ctx.matrixId(cmd.inviterId), target));
  // The rights wait in the audit row; the join that comes back from Matrix applies them.
  await recordChannelEvent(sql, {
    channel_id: ctx.channelId,
    event_type: "member.invited",
    actor_id: cmd.inviterId,
    target_id: cmd.memberId,
    metadata: rights,
  });
  await ctx.deps.events.publish(Subjects.memberInvited, {
    event_id: `member.invited:${ctx.channelId}:${cmd.memberId}:${Date.now()}`,
    channel_id: ctx.channelId,
    member_id: cmd.memberId,
    invited_by: cmd.inviterId,
    role: cmd.role,
  });
  return answer;
}

function sameRights(a: MemberRights, b: MemberRights): boolean {
  return (Object.keys(b) as Array<keyof MemberRights>).every((k) => a[k] === b[k]);
}
