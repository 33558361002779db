import type { ServiceDeps } from "../deps.ts";
import type { MemberRow } from "../../store/rows.ts";
import { findMember, listMembers } from "../../store/members.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { requireInviteRight } from "../../domain/rights.ts";
import type { InviteMemberBody } from "./model.ts";
import type { PendingInvite } from "../../actors/actor.ts";

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
    return this.deps.registry.get(channelId).invite({
      inviterId: callerId,
      memberId: body.member_id,
      role: body.role ?? (body.member_id.startsWith("agent:") ? "agent" : "member"),
      can_read: body.can_read ?? true,
      can_write: body.can_write ?? true,
      can_invite: body.can_invite ?? false,
      can_kick: body.can_kick ?? false,
      can_create_tasks: body.can_create_tasks ?? false,
    });
  }
}
