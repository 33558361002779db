import { ignored, indexed, type EventHandler } from "../../channel/handlers.ts";
import type { ChannelContext } from "../../channel/context.ts";
import { fromMatrixUserId } from "../../domain/ids.ts";
import { CALL_MEMBER_TYPES, LEGACY_CALL_TYPES, legacyCallChange, parseCallMembers } from "../../domain/calls.ts";
import { applyLegacyCallChange, replaceCallSlot } from "../../store/calls.ts";
import { announceCall } from "./announce.ts";

const target = (ctx: ChannelContext) => ({ deps: ctx.deps, channel: ctx.channel });

/**
 * A MatrixRTC call-member state event (either shape, see domain/calls.ts): the slot it names
 * (type and state key) now holds exactly its memberships; empty content means the slot left.
 * The member is the event's sender, as matrix-js-sdk's CallMembership has it.
 */
const callMembers: EventHandler = {
  kinds: [...CALL_MEMBER_TYPES],
  state: true,
  async handle(ctx, event) {
    if (typeof event.state_key !== "string") return ignored();
    const memberships = parseCallMembers(event.content, event.origin_server_ts);
    const slot = {
      channelId: ctx.channelId,
      stateType: event.type,
      stateKey: event.state_key,
      matrixUserId: event.sender,
      memberId: fromMatrixUserId(event.sender, ctx.deps.matrix.serverName).id,
      eventId: event.event_id,
      memberships,
    };
    const to = target(ctx);
    return indexed((tx) => replaceCallSlot(tx, slot), () => announceCall(to));
  },
};

/** Legacy 1:1 VoIP: m.call.invite rings, m.call.answer makes the call active, m.call.hangup and m.call.reject end it. */
const legacyCalls: EventHandler = {
  kinds: [...LEGACY_CALL_TYPES],
  async handle(ctx, event) {
    const change = legacyCallChange(event.type, event.content, event.origin_server_ts);
    if (!change) return ignored();
    const serverName = ctx.deps.matrix.serverName;
    const sender = fromMatrixUserId(event.sender, serverName).id;
    const invitee = change.kind === "invite" && change.invitee ? fromMatrixUserId(change.invitee, serverName).id : null;
    const to = target(ctx);
    return indexed(
      (tx) => applyLegacyCallChange(tx, ctx.channelId, change, sender, invitee, new Date(event.origin_server_ts)),
      (changed) => (changed ? announceCall(to) : undefined),
    );
  },
};

export const callHandlers: EventHandler[] = [callMembers, legacyCalls];
