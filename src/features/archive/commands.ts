import type { ChannelContext } from "../../channel/context.ts";
import { Subjects } from "../../events/model.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import { markArchived } from "../../store/channels.ts";
import type { ChannelRow } from "../../store/rows.ts";
import { channelArchived } from "../../errors.ts";
import { toChannelView } from "../channels/model.ts";
import { creatorOf, readPowerLevels } from "../members/power.ts";

/**
 * Archives a channel. The room is kept (its history stays readable in Matrix too) but made
 * read-only there as well: nobody new may join (join rule invite), and only power 100 (the
 * owners) may send events (events_default 100).
 */
async function archiveChannel(ctx: ChannelContext, cmd: { callerId: string }): Promise<ChannelRow> {
  if (ctx.channel.archived_at) throw channelArchived();
  const { matrix, sql } = ctx.deps;
  const sender = creatorOf(ctx);
  await ctx.matrixCall(async () => {
    await matrix.sendState(ctx.room, sender, "m.room.join_rules", "", { join_rule: "invite" });
    const levels = (await readPowerLevels(ctx)) ?? {};
    await matrix.sendState(ctx.room, sender, "m.room.power_levels", "", { ...levels, events_default: 100 });
  });
  const archived = await sql.begin(async (tx) => {
    const row = await markArchived(tx, ctx.channelId);
    await recordChannelEvent(tx, { channel_id: ctx.channelId, event_type: "channel.archived", actor_id: cmd.callerId, metadata: { via: "api" } });
    return row;
  });
  ctx.setChannel(archived);
  void ctx.announce({ type: "channel.archived", channel: toChannelView(archived) }, Subjects.channelArchived, {
    event_id: `channel.archived:${archived.id}`,
    channel_id: archived.id,
    microdao_id: archived.microdao_id,
    archived_by: cmd.callerId,
    archived_at: archived.archived_at!.toISOString(),
  });
  return archived;
}

export const archiveCommands = { "archive.archive": archiveChannel };

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends ArchiveCommands {}
}
type ArchiveCommands = typeof archiveCommands;
