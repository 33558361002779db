import type { Sql } from "./db.ts";
import type { ChannelRow, MemberRow } from "./rows.ts";
import { submitTogether } from "./group-commit.ts";

export interface ChannelAndMember {
  channel: ChannelRow | null;
  /** The caller's current membership (null for a non-member, or when there is no channel). */
  member: MemberRow | null;
}

/**
 * A channel and one caller's membership of it, in one statement merged with the look-ups of
 * other requests at the same moment (store/group-commit.ts): what every access check reads.
 */
export function findChannelAndMemberTogether(sql: Sql, channelId: string, memberId: string): Promise<ChannelAndMember> {
  return submitTogether(sql, findChannelsAndMembersMerged, { channelId, memberId });
}

type Found = ChannelRow & { wanted: number; caller_membership: (Omit<MemberRow, "joined_at" | "left_at"> & { joined_at: string; left_at: string | null }) | null };

async function findChannelsAndMembersMerged(sql: Sql, keys: readonly { channelId: string; memberId: string }[]): Promise<ChannelAndMember[]> {
  // The membership travels as one jsonb value beside the channel's columns (the two tables
  // share column names); by position, not by id: PostgreSQL reads a uuid in more spellings than it writes.
  const rows = await sql<Found[]>`
    select v.wanted::int as wanted, c.*,
           (select to_jsonb(m) from channel_members m
             where m.channel_id = c.id and m.member_id = v.member_id and m.left_at is null) as caller_membership
      from (values ${sql(keys.map((k, i) => [i, k.channelId, k.memberId]))}) as v (wanted, id, member_id)
      join channels c on c.id = v.id::uuid`;
  const answers: ChannelAndMember[] = keys.map(() => ({ channel: null, member: null }));
  for (const { wanted, caller_membership: m, ...channel } of rows) {
    // jsonb spells timestamps as text: the row gets the Dates a plain select would give.
    const member = m ? { ...m, joined_at: new Date(m.joined_at), left_at: m.left_at === null ? null : new Date(m.left_at) } : null;
    answers[wanted] = { channel, member };
  }
  return answers;
}
