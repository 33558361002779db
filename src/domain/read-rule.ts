/**
 * Who may still read a channel after its visibility narrowed, as plain data (it travels to the
 * instances holding the channel's sockets): a member's can_read decides; a non-member may read a
 * microdao channel when their token lists its microDAO.
 */
export interface ReadRule {
  visibility: string;
  microdaoId: string;
  /** member id -> can_read */
  members: Record<string, boolean>;
}

export function mayRead(rule: ReadRule, memberId: string, microdaos: readonly string[]): boolean {
  const member = rule.members[memberId];
  if (member !== undefined) return member;
  return rule.visibility === "microdao" && microdaos.includes(rule.microdaoId);
}
