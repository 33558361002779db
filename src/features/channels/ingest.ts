import { ignored, indexed, type EventHandler } from "../../channel/handlers.ts";
import { fromMatrixUserId } from "../../domain/ids.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import { updateChannel, type ChannelPatch } from "../../store/channels.ts";
import { announceChannelUpdated } from "./commands.ts";

/** Name and topic changes made in Matrix update the channel; our own changes echo as no-ops. */
const roomState: EventHandler = {
  kinds: ["m.room.name", "m.room.topic"],
  state: true,
  async handle(ctx, event) {
    const channel = ctx.channel;
    const patch: ChannelPatch = {};
    if (event.type === "m.room.name" && typeof event.content.name === "string" && event.content.name && event.content.name !== channel.name) {
      patch.name = event.content.name.slice(0, 255);
    }
    if (event.type === "m.room.topic") {
      const topic = typeof event.content.topic === "string" && event.content.topic !== "" ? event.content.topic : null;
      if (topic !== channel.topic) patch.topic = topic;
    }
    if (Object.keys(patch).length === 0) return ignored();
    const actor = fromMatrixUserId(event.sender, ctx.deps.matrix.serverName);
    return indexed(
      async (tx) => {
        const row = await updateChannel(tx, ctx.channelId, patch);
        await recordChannelEvent(tx, {
          channel_id: ctx.channelId,
          event_type: "channel.updated",
          actor_id: actor.id,
          metadata: { fields: Object.keys(patch), via: "matrix" },
        });
        return row;
      },
      (updated) => announceChannelUpdated(ctx, updated, actor.id, Object.keys(patch), "matrix"),
    );
  },
};

export const channelHandlers: EventHandler[] = [roomState];
