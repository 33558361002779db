import type { ChannelContext } from "../../channel/context.ts";
import type { Tx } from "../../store/db.ts";
import { Subjects } from "../../events/model.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import { findMessage } from "../../store/messages.ts";
import type { MessageRow } from "../../store/rows.ts";
import { AppError, conflict, notFound } from "../../errors.ts";
import { actingUser, readPowerLevels, stateLevel } from "../members/power.ts";
import { deletePin, findPin, insertPin, type PinRow } from "../../store/pins.ts";
import { toPinView } from "./model.ts";

export const PINNED_EVENTS = "m.room.pinned_events";

/** The room's pinned event ids (m.room.pinned_events content `{pinned: [...]}`). */
export function pinnedIn(content: Record<string, unknown> | null | undefined): string[] {
  const pinned = content?.pinned;
  return Array.isArray(pinned) ? pinned.filter((e): e is string => typeof e === "string") : [];
}

/** Rewrites the room's pin list, merged with what Matrix holds now, as the caller if their power allows. */
async function writePinned(ctx: ChannelContext, callerId: string, change: (pinned: string[]) => string[]): Promise<void> {
  await ctx.matrixCall(async () => {
    const { matrix } = ctx.deps;
    const current = await matrix.getState(ctx.room, PINNED_EVENTS, "");
    const levels = await readPowerLevels(ctx);
    const sender = actingUser(ctx, levels, callerId, stateLevel(levels, PINNED_EVENTS));
    await matrix.sendState(ctx.room, sender, PINNED_EVENTS, "", { ...(current ?? {}), pinned: change(pinnedIn(current)) });
  });
}

async function pinnableMessage(ctx: ChannelContext, messageId: string): Promise<MessageRow & { matrix_event_id: string }> {
  const message = await findMessage(ctx.deps.sql, ctx.channelId, messageId);
  if (!message || message.deleted_at) throw notFound("message");
  if (!message.matrix_event_id) throw new AppError(409, "MESSAGE_PENDING", "the message is not in Matrix yet");
  return message as MessageRow & { matrix_event_id: string };
}

async function pinMessage(ctx: ChannelContext, cmd: { callerId: string; messageId: string }): Promise<{ pin: PinRow; message: MessageRow }> {
  const message = await pinnableMessage(ctx, cmd.messageId);
  if (await findPin(ctx.deps.sql, ctx.channelId, message.id)) throw conflict("ALREADY_PINNED", "the message is already pinned");
  await writePinned(ctx, cmd.callerId, (pinned) => (pinned.includes(message.matrix_event_id) ? pinned : [...pinned, message.matrix_event_id]));
  const pin = await ctx.deps.sql.begin((tx) => recordPin(ctx, tx, message, cmd.callerId, "api"));
  announcePin(ctx, pin, message, "api");
  return { pin, message };
}

async function unpinMessage(ctx: ChannelContext, cmd: { callerId: string; messageId: string }): Promise<void> {
  const pin = await findPin(ctx.deps.sql, ctx.channelId, cmd.messageId);
  if (!pin) throw notFound("pin");
  await writePinned(ctx, cmd.callerId, (pinned) => pinned.filter((e) => e !== pin.matrix_event_id));
  await ctx.deps.sql.begin((tx) => recordUnpin(ctx, tx, pin, cmd.callerId, "api"));
  announceUnpin(ctx, pin, cmd.callerId, "api");
}

export async function recordPin(ctx: ChannelContext, tx: Tx, message: MessageRow, actorId: string, via: "api" | "matrix"): Promise<PinRow> {
  const pin = await insertPin(tx, { channel_id: ctx.channelId, message_id: message.id, matrix_event_id: message.matrix_event_id!, pinned_by: actorId });
  await recordChannelEvent(tx, { channel_id: ctx.channelId, event_type: "message.pinned", actor_id: actorId, target_id: message.id, metadata: { via } });
  return pin;
}

export async function recordUnpin(ctx: ChannelContext, tx: Tx, pin: PinRow, actorId: string, via: "api" | "matrix"): Promise<void> {
  await deletePin(tx, ctx.channelId, pin.message_id);
  await recordChannelEvent(tx, { channel_id: ctx.channelId, event_type: "message.unpinned", actor_id: actorId, target_id: pin.message_id, metadata: { via } });
}

export function announcePin(ctx: ChannelContext, pin: PinRow, message: MessageRow, via: "api" | "matrix"): void {
  void ctx.announce({ type: "message.pinned", pin: toPinView(pin, message) }, Subjects.messagePinned, {
    event_id: `message.pinned:${pin.message_id}:${pin.pinned_at.getTime()}`,
    channel_id: ctx.channelId,
    message_id: pin.message_id,
    matrix_event_id: pin.matrix_event_id,
    pinned_by: pin.pinned_by,
    via,
  });
}

export function announceUnpin(ctx: ChannelContext, pin: PinRow, actorId: string, via: "api" | "matrix"): void {
  void ctx.announce({ type: "message.unpinned", message_id: pin.message_id, matrix_event_id: pin.matrix_event_id, unpinned_by: actorId }, Subjects.messageUnpinned, {
    event_id: `message.unpinned:${pin.message_id}:${Bun.randomUUIDv7()}`,
    channel_id: ctx.channelId,
    message_id: pin.message_id,
    matrix_event_id: pin.matrix_event_id,
    unpinned_by: actorId,
    via,
  });
}

export const pinCommands = { "pins.pin": pinMessage, "pins.unpin": unpinMessage };

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends PinCommands {}
}
type PinCommands = typeof pinCommands;
