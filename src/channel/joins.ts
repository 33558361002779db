import { findMember, upsertMember } from "../store/members.ts";
import { recordChannelEvent } from "../store/channel-events.ts";
import { membershipRecord, rightsOrDefaults } from "../domain/member-rights.ts";
import { announceJoin } from "./announce.ts";
import type { ChannelContext } from "./context.ts";

/** A public (or microdao) channel's first write joins the writer, in Matrix and the index. */
export async function joinPublic(ctx: ChannelContext, memberId: string): Promise<void> {
  const { sql, matrix } = ctx.deps;
  if (await findMember(sql, ctx.channelId, memberId)) return;
  const matrixId = ctx.matrixId(memberId);
  await ctx.matrixCall(async () => {
    await matrix.ensureUser(matrixId);
    // A microdao channel's room is invite-only in Matrix; the creator's account (power 100)
    // lets in the microDAO member whom domain/rights.ts allowed to write.
    if (ctx.channel.visibility !== "public") await matrix.invite(ctx.room, ctx.matrixId(ctx.channel.created_by), matrixId);
    await matrix.join(ctx.room, matrixId);
  });
  const member = await sql.begin(async (tx) => {
    // Only users join on a first write (domain/rights.ts writeRight): the defaults make them members.
    const rights = rightsOrDefaults(memberId, null);
    const row = await upsertMember(tx, membershipRecord({ channelId: ctx.channelId, memberId, matrixUserId: matrixId, rights, powerLevel: 0, invitedBy: null }));
    await recordChannelEvent(tx, { channel_id: ctx.channelId, event_type: "member.joined", actor_id: memberId, target_id: memberId });
    return row;
  });
  void announceJoin(ctx, member, "api");
}
