import type { Sql } from "../store/db.ts";
import type { ChannelRow, MemberRow } from "../store/rows.ts";
import { findChannelAndMemberTogether } from "../store/access.ts";
import { notFound } from "../errors.ts";
import { callerMicrodaos } from "./caller-scope.ts";
import { mayRead, type AccessFacts } from "../domain/rights.ts";

export interface ChannelAccess extends AccessFacts {
  channel: ChannelRow;
  member: MemberRow | null;
}

/**
 * The channel as the caller may see it (the rule is domain/rights.ts mayRead). To anyone who
 * may not read it, it does not exist (404, not 403), so its existence does not leak.
 */
export async function readableChannel(sql: Sql, callerId: string, channelId: string): Promise<ChannelAccess> {
  // Both in one statement, merged with other requests' look-ups; a membership of no channel is simply null.
  const { channel, member } = await findChannelAndMemberTogether(sql, channelId, callerId);
  if (!channel) throw notFound("channel");
  const access = { channel, member, inMicrodao: callerMicrodaos().includes(channel.microdao_id) };
  if (!mayRead(access)) throw notFound("channel");
  return access;
}
