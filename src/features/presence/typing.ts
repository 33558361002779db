import type { ChannelContext } from "../../channel/context.ts";
import type { ChannelPorts } from "../../channel/deps.ts";
import type { EphemeralHandler } from "../../channel/handlers.ts";
import type { EphemeralEvent } from "../../matrix/port.ts";
import { fromMatrixUserId, isServiceUser } from "../../domain/ids.ts";
import { Subjects } from "../../events/model.ts";

type Timer = ReturnType<typeof setTimeout>;
/** channel -> who types there -> the timer that ends an indicator set through this service (null: Matrix's own). */
type TypingState = Map<string, Map<string, Timer | null>>;

// Kept per running app (its actor deps), so a hot reload or a second server in a test starts empty.
const states = new WeakMap<ChannelPorts, TypingState>();

function typistsOf(ctx: ChannelContext): Map<string, Timer | null> {
  let state = states.get(ctx.deps);
  if (!state) states.set(ctx.deps, (state = new Map()));
  let typists = state.get(ctx.channelId);
  if (!typists) state.set(ctx.channelId, (typists = new Map()));
  return typists;
}

export function typingUserIds(ctx: ChannelContext): string[] {
  return [...typistsOf(ctx).keys()].sort();
}

function announce(ctx: Pick<ChannelContext, "deps" | "channelId">, typists: Map<string, unknown>) {
  const userIds = [...typists.keys()].sort();
  ctx.deps.broadcast(ctx.channelId, { type: "typing", user_ids: userIds });
  void ctx.deps.events.publish(Subjects.typing, {
    event_id: `typing:${ctx.channelId}:${Bun.randomUUIDv7()}`,
    channel_id: ctx.channelId,
    user_ids: userIds,
    at: new Date().toISOString(),
  });
}

/**
 * Typing set through the API or a socket is announced at once, without waiting for Matrix to
 * echo it, and ends by itself after its timeout even if Matrix never says so (push mode
 * without ephemeral events). Returns who types now.
 */
export async function applyLocalTyping(ctx: ChannelContext, memberId: string, typing: boolean, timeoutMs: number): Promise<string[]> {
  const typists = typistsOf(ctx);
  const was = typists.has(memberId);
  clearTimeout(typists.get(memberId) ?? undefined);
  if (typing) {
    const target = { deps: ctx.deps, channelId: ctx.channelId };
    const timer: Timer = setTimeout(() => {
      if (typists.get(memberId) !== timer) return;
      typists.delete(memberId);
      announce(target, typists);
    }, timeoutMs);
    (timer as { unref?: () => void }).unref?.();
    typists.set(memberId, timer);
  } else {
    typists.delete(memberId);
  }
  if (was !== typing) announce(ctx, typists);
  return typingUserIds(ctx);
}

/**
 * m.typing carries everyone typing in the room. It replaces what we knew about Matrix users
 * from outside; DAARION users and agents are virtual users only this service makes type, so
 * their state stays as our own commands left it, and a late echo (typing: true arriving after
 * the typing: false that followed it) cannot flicker their indicator. Only a change is announced.
 */
async function ingestTyping(ctx: ChannelContext, event: EphemeralEvent): Promise<void> {
  const serverName = ctx.deps.matrix.serverName;
  const raw = Array.isArray(event.content.user_ids) ? event.content.user_ids : [];
  const now = new Set(
    raw
      .filter((u): u is string => typeof u === "string" && !isServiceUser(u, serverName))
      .map((u) => fromMatrixUserId(u, serverName).id)
      .filter(isForeign),
  );
  const typists = typistsOf(ctx);
  let changed = false;
  for (const [member, timer] of typists) {
    if (!isForeign(member) || now.has(member)) continue;
    clearTimeout(timer ?? undefined);
    typists.delete(member);
    changed = true;
  }
  for (const member of now) {
    if (typists.has(member)) continue;
    typists.set(member, null);
    changed = true;
  }
  if (changed) announce(ctx, typists);
}

const isForeign = (memberId: string) => memberId.startsWith("matrix:");

export const typingHandler: EphemeralHandler = { kinds: ["m.typing"], handle: ingestTyping };
