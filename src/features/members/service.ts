import type { ServiceDeps } from "../deps.ts";
import type { MemberRow } from "../../store/rows.ts";
import { findMember, listMembers } from "../../store/members.ts";
import { AppError, forbidden, notFound } from "../../errors.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { requireAdmin, requireInviteRight, requireNotArchived } from "../../domain/rights.ts";
import type { MemberChange } from "./commands.ts";
import { listChannelEvents, type ChannelEventRow } from "../../store/channel-events.ts";
import type { InviteMemberBody } from "./model.ts";
import { rightsOrDefaults } from "../../domain/member-rights.ts";
import type { PendingInvite } from "./invite.ts";

/**
 * Who may list, invite, remove and change whom. Owners are never kicked or changed (as in
 * Matrix, where equal power cannot be lowered); only owners act on admins and make owners; the
 * channel's creator, whose Matrix account changes room state, cannot leave.
 */
export class MemberService {
  constructor(private readonly deps: ServiceDeps) {}

  async list(callerId: string, channelId: string): Promise<MemberRow[]> {
    await readableChannel(this.deps.sql, callerId, channelId);
    return listMembers(this.deps.sql, channelId);
  }

  /**
   * DAARION users and agents are virtual Matrix users: invited and joined at once. A Matrix
   * user from outside is only invited; they become a member (with these rights) when they
   * accept in their client. `rerun` (the request carries an Idempotency-Key whose first run
   * was cut short) answers the membership this caller's first attempt made, rather than 409.
   */
  async invite(callerId: string, channelId: string, body: InviteMemberBody, rerun = false): Promise<MemberRow | PendingInvite> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    requireInviteRight(access);
    if (rerun) {
      const made = await findMember(this.deps.sql, channelId, body.member_id);
      if (made?.invited_by === callerId) return made;
    }
    return this.deps.registry.run(channelId, "members.invite", {
      inviterId: callerId,
      memberId: body.member_id,
      ...rightsOrDefaults(body.member_id, body),
    });
  }

  async remove(callerId: string, channelId: string, memberId: string, reason: string | null): Promise<{ row: MemberRow; kicked: boolean }> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    requireNotArchived(access.channel);
    const target = await findMember(this.deps.sql, channelId, memberId);
    if (!target) throw notFound("member");
    const kicked = callerId !== memberId;
    if (!kicked) {
      if (memberId === access.channel.created_by) {
        throw new AppError(409, "CREATOR_CANNOT_LEAVE", "the channel's creator holds its Matrix room and cannot leave; archive the channel instead");
      }
    } else {
      const caller = access.member;
      if (!caller || !(caller.can_kick || caller.role === "owner" || caller.role === "admin")) throw forbidden("you may not remove members from this channel");
      if (target.role === "owner") throw forbidden("owners cannot be removed");
      if (target.role === "admin" && caller.role !== "owner") throw forbidden("only owners may remove admins");
    }
    const row = await this.deps.registry.run(channelId, "members.remove", { callerId, memberId, reason });
    return { row, kicked };
  }

  async update(callerId: string, channelId: string, memberId: string, change: MemberChange): Promise<MemberRow> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    requireAdmin(access);
    const target = await findMember(this.deps.sql, channelId, memberId);
    if (!target) throw notFound("member");
    const caller = access.member!;
    if (target.role === "owner") throw forbidden("an owner's role and rights cannot be changed");
    if (change.role === "owner" && caller.role !== "owner") throw forbidden("only owners may make owners");
    if (caller.role === "admin" && target.role === "admin" && target.member_id !== callerId) throw forbidden("admins may not change other admins");
    return this.deps.registry.run(channelId, "members.update", { callerId, memberId, change });
  }

  /** The audit log is readable by whoever may read the channel: Matrix shows the same changes in the room. */
  async events(callerId: string, channelId: string, opts: { limit: number; cursor: string | null; type: string | null }) {
    await readableChannel(this.deps.sql, callerId, channelId);
    const rows: ChannelEventRow[] = await listChannelEvents(this.deps.sql, channelId, { beforePosition: opts.cursor, type: opts.type, limit: opts.limit });
    const last = rows.at(-1);
    return { rows, nextCursor: rows.length === opts.limit && last ? String(last.position) : null };
  }
}
