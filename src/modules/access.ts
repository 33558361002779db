import type { Sql } from "../store/db.ts";
import type { ChannelRow, MemberRow } from "../store/rows.ts";
import { findChannel } from "../store/channels.ts";
import { findMember } from "../store/members.ts";
import { channelArchived, forbidden, notFound } from "../errors.ts";
import { callerMicrodaos } from "../http/auth/scope.ts";

export interface ChannelAccess {
  channel: ChannelRow;
  member: MemberRow | null;
  /** The caller's token lists the channel's microDAO (AUTH_MODE=jwt, `microdaos` claim). */
  inMicrodao: boolean;
}

/**
 * The channel as the caller may see it. Public channels are readable by anyone; microdao
 * channels by current members with can_read and by members of the microDAO (as their token
 * says); private channels only by current members with can_read. To anyone else they do not
 * exist (404, not 403), so their existence does not leak. A member of a microdao channel whose
 * can_read was taken away stays out, microDAO or not.
 */
export async function readableChannel(sql: Sql, callerId: string, channelId: string): Promise<ChannelAccess> {
  // Both at once, one round trip instead of two; a membership of no channel is simply null.
  const [channel, member] = await Promise.all([findChannel(sql, channelId), findMember(sql, channelId, callerId)]);
  if (!channel) throw notFound("channel");
  const inMicrodao = callerMicrodaos().includes(channel.microdao_id);
  // A membership whose can_read was taken away outweighs the microDAO claim.
  const readable = channel.visibility === "public" || (member ? member.can_read : channel.visibility === "microdao" && inMicrodao);
  if (!readable) throw notFound("channel");
  return { channel, member, inMicrodao };
}

/** Whether the caller may write; on a public channel (or a microdao channel of theirs) a user's first write joins them. */
export function writeRight({ channel, member, inMicrodao }: ChannelAccess, callerId: string): { joinFirst: boolean } {
  requireNotArchived(channel);
  if (member) {
    if (!member.can_write) throw forbidden("you may not write in this channel");
    return { joinFirst: false };
  }
  const open = channel.visibility === "public" || (channel.visibility === "microdao" && inMicrodao);
  if (open && callerId.startsWith("user:")) return { joinFirst: true };
  throw forbidden("only members may write in this channel");
}

/** Writes that only make sense for a current member (undoing a reaction, typing): no join on first use. */
export function requireMemberWriteRight(access: ChannelAccess, callerId: string, what: string): void {
  if (writeRight(access, callerId).joinFirst) throw forbidden(`only members may ${what}`);
}

export function requireInviteRight({ channel, member }: ChannelAccess): void {
  requireNotArchived(channel);
  if (!member || !(member.can_invite || member.role === "owner" || member.role === "admin")) {
    throw forbidden("you may not invite members to this channel");
  }
}

export function requireAdmin({ channel, member }: ChannelAccess): void {
  requireNotArchived(channel);
  if (!member || !(member.role === "owner" || member.role === "admin")) {
    throw forbidden("only the channel's owners and admins may change it");
  }
}

/** An archived channel stays readable; every change to it is 410 CHANNEL_ARCHIVED. */
export function requireNotArchived(channel: ChannelRow): void {
  if (channel.archived_at) throw channelArchived();
}
