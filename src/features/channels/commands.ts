import { Subjects } from "../../events/model.ts";
import type { ChannelContext } from "../../channel/context.ts";
import { joinRuleFor } from "../../matrix/port.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import { updateChannel, type ChannelPatch } from "../../store/channels.ts";
import { listMembers } from "../../store/members.ts";
import type { ChannelRow } from "../../store/rows.ts";
import { toChannelView } from "./model.ts";

/** Renames, retopics or changes the visibility of a channel: in the room's state first, then in the index. */
async function updateChannelSettings(ctx: ChannelContext, cmd: { actorId: string; patch: ChannelPatch }): Promise<ChannelRow> {
  const { sql, matrix } = ctx.deps;
  const { actorId, patch } = cmd;
  const channel = ctx.channel;
  // Room state is changed by the creator's account, which holds power 100 in the room;
  // channel_events records who asked.
  const stateSender = ctx.matrixId(channel.created_by);
  await ctx.matrixCall(async () => {
    if (patch.name !== undefined) await matrix.sendState(ctx.room, stateSender, "m.room.name", "", { name: patch.name });
    if (patch.topic !== undefined) await matrix.sendState(ctx.room, stateSender, "m.room.topic", "", { topic: patch.topic ?? "" });
    if (patch.visibility !== undefined && patch.visibility !== channel.visibility) {
      await matrix.sendState(ctx.room, stateSender, "m.room.join_rules", "", { join_rule: joinRuleFor(patch.visibility) });
    }
  });
  const updated = await sql.begin(async (tx) => {
    const row = await updateChannel(tx, ctx.channelId, patch);
    await recordChannelEvent(tx, {
      channel_id: ctx.channelId,
      event_type: "channel.updated",
      actor_id: actorId,
      metadata: { fields: Object.keys(patch) },
    });
    return row;
  });
  announceChannelUpdated(ctx, updated, actorId, Object.keys(patch), "api");
  if (updated.visibility !== channel.visibility) await closeUnreadableSockets(ctx, updated);
  return updated;
}

/** The channel's new row, kept by its loop, on the WebSocket and NATS. */
export function announceChannelUpdated(ctx: ChannelContext, updated: ChannelRow, actorId: string, fields: string[], via: "api" | "matrix"): void {
  ctx.setChannel(updated);
  void ctx.announce({ type: "channel.updated", channel: toChannelView(updated) }, Subjects.channelUpdated, {
    event_id: `channel.updated:${ctx.channelId}:${Bun.randomUUIDv7()}`,
    channel_id: ctx.channelId,
    microdao_id: updated.microdao_id,
    updated_by: actorId,
    fields,
    via,
  });
}

/**
 * A channel made private (or microdao) ends the sockets of those who could read it only while
 * it was open, by the rule of readableChannel: a member's can_read decides; a non-member of a
 * microdao channel may read it when their token lists its microDAO.
 */
async function closeUnreadableSockets(ctx: ChannelContext, channel: ChannelRow) {
  if (channel.visibility === "public" || !ctx.deps.sockets) return;
  const members = Object.fromEntries((await listMembers(ctx.deps.sql, ctx.channelId)).map((m) => [m.member_id, m.can_read]));
  ctx.deps.sockets.revokeUnless(
    ctx.channelId,
    { visibility: channel.visibility, microdaoId: channel.microdao_id, members },
    `channel is now ${channel.visibility}`,
  );
}

export const channelCommands = { "channels.update": updateChannelSettings };

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends ChannelSettingsCommands {}
}
type ChannelSettingsCommands = typeof channelCommands;
