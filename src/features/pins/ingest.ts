import { indexed, type EventHandler } from "../../channel/handlers.ts";
import { fromMatrixUserId } from "../../domain/ids.ts";
import { findMessageByEvent } from "../../store/messages.ts";
import type { MessageRow } from "../../store/rows.ts";
import { PINNED_EVENTS, announcePin, announceUnpin, pinnedIn, recordPin, recordUnpin } from "./commands.ts";
import { listPinRows, type PinRow } from "../../store/pins.ts";

/**
 * m.room.pinned_events changed: the room's *current* list (not the event's, which an echo of
 * our own older change would make stale) is diffed against the index. Our own changes find
 * the index already equal and are just consumed. Events that are not
 * messages of this channel (a pinned membership event, say) are not indexed as pins.
 */
const pinnedEvents: EventHandler = {
  kinds: [PINNED_EVENTS],
  state: true,
  async handle(ctx, event) {
    const { sql, matrix } = ctx.deps;
    const wanted = new Set(pinnedIn(await matrix.getState(ctx.room, PINNED_EVENTS, "")));
    const inIndex = await listPinRows(sql, ctx.channelId);
    const indexedIds = new Set(inIndex.map((p) => p.matrix_event_id));
    const removed = inIndex.filter((p) => !wanted.has(p.matrix_event_id));
    const added: MessageRow[] = [];
    for (const eventId of wanted) {
      if (indexedIds.has(eventId)) continue;
      const message = await findMessageByEvent(sql, eventId);
      if (message && message.channel_id === ctx.channelId && !message.deleted_at) added.push(message);
    }
    const actor = fromMatrixUserId(event.sender, matrix.serverName).id;
    return indexed(
      async (tx) => {
        const made: Array<{ pin: PinRow; message: MessageRow }> = [];
        for (const message of added) made.push({ pin: await recordPin(ctx, tx, message, actor, "matrix"), message });
        for (const pin of removed) await recordUnpin(ctx, tx, pin, actor, "matrix");
        return made;
      },
      (pins) => {
        for (const { pin, message } of pins) announcePin(ctx, pin, message, "matrix");
        for (const pin of removed) announceUnpin(ctx, pin, actor, "matrix");
      },
    );
  },
};

export const pinHandlers: EventHandler[] = [pinnedEvents];
