import { channelArchived, forbidden } from "../errors.ts";

export type Visibility = "public" | "private" | "microdao";

/** What the rules below read of a channel, a membership and the caller's token. */
export interface AccessFacts {
  channel: { visibility: string; archived_at: Date | null };
  member: { role: string; can_read: boolean; can_write: boolean; can_invite: boolean } | null;
  /** The caller's token lists the channel's microDAO (AUTH_MODE=jwt, `microdaos` claim). */
  inMicrodao: boolean;
}

/**
 * Public channels are readable by anyone; microdao channels by current members with can_read
 * and by members of the microDAO (as their token says); private channels only by current
 * members with can_read. A member of a microdao channel whose can_read was taken away stays
 * out, microDAO or not: the membership outweighs the claim.
 */
export function mayRead({ channel, member, inMicrodao }: AccessFacts): boolean {
  return channel.visibility === "public" || (member ? member.can_read : channel.visibility === "microdao" && inMicrodao);
}

/** Whether the caller may write; on a public channel (or a microdao channel of theirs) a user's first write joins them. */
export function writeRight({ channel, member, inMicrodao }: AccessFacts, callerId: string): { joinFirst: boolean } {
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
export function requireMemberWriteRight(access: AccessFacts, callerId: string, what: string): void {
  if (writeRight(access, callerId).joinFirst) throw forbidden(`only members may ${what}`);
}

export function requireInviteRight({ channel, member }: AccessFacts): void {
  requireNotArchived(channel);
  if (!member || !(member.can_invite || member.role === "owner" || member.role === "admin")) {
    throw forbidden("you may not invite members to this channel");
  }
}

export function requireAdmin({ channel, member }: AccessFacts): void {
  requireNotArchived(channel);
  if (!member || !(member.role === "owner" || member.role === "admin")) {
    throw forbidden("only the channel's owners and admins may change it");
  }
}

/** An archived channel stays readable; every change to it is 410 CHANNEL_ARCHIVED. */
export function requireNotArchived(channel: { archived_at: Date | null }): void {
  if (channel.archived_at) throw channelArchived();
}
