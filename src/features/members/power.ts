import type { ChannelContext } from "../../channel/context.ts";
import type { Role } from "../../store/rows.ts";

export type PowerLevels = Record<string, unknown>;

/** The DAARION role's Matrix power: owners 100, admins 50, everyone else 0. */
export function powerForRole(role: Role): number {
  return role === "owner" ? 100 : role === "admin" ? 50 : 0;
}

/**
 * A user's power in the room. In room version 12 the creator holds unlimited power and is not
 * listed in `users`; it counts as above everyone.
 */
export function powerOf(levels: PowerLevels | null, user: string, creator?: string): number {
  const users = (levels?.users ?? {}) as Record<string, unknown>;
  const own = users[user];
  if (typeof own === "number") return own;
  if (creator && user === creator) return Number.POSITIVE_INFINITY;
  return typeof levels?.users_default === "number" ? levels.users_default : 0;
}

function levelOf(levels: PowerLevels | null, key: string, fallback: number): number {
  const v = levels?.[key];
  return typeof v === "number" ? v : fallback;
}

/** The power a state event of `type` needs. */
export function stateLevel(levels: PowerLevels | null, type: string): number {
  const events = (levels?.events ?? {}) as Record<string, unknown>;
  const v = events[type];
  return typeof v === "number" ? v : levelOf(levels, "state_default", 50);
}

export function kickLevel(levels: PowerLevels | null): number {
  return levelOf(levels, "kick", 50);
}

export async function readPowerLevels(ctx: ChannelContext): Promise<PowerLevels | null> {
  return ctx.deps.matrix.getState(ctx.room, "m.room.power_levels", "");
}

/** The channel creator's Matrix account: it holds the room's highest power. */
export function creatorOf(ctx: ChannelContext): string {
  return ctx.matrixId(ctx.channel.created_by);
}

/**
 * Who performs a change in Matrix: the caller, when their own power allows it (so Element
 * shows who did it), otherwise the channel creator's account; channel_events records who asked.
 */
export function actingUser(ctx: ChannelContext, levels: PowerLevels | null, callerId: string, needed: number, targetMatrixId?: string): string {
  const caller = ctx.matrixId(callerId);
  const creator = creatorOf(ctx);
  const callerPower = powerOf(levels, caller, creator);
  const enough = callerPower >= needed && (targetMatrixId === undefined || callerPower > powerOf(levels, targetMatrixId, creator));
  return enough ? caller : creator;
}

/**
 * Sets one user's power in m.room.power_levels, merged into the current content so nothing
 * else changes; sent by the creator, who holds power 100 (or unlimited, in room v12).
 */
export async function setUserPower(ctx: ChannelContext, matrixUserId: string, level: number): Promise<void> {
  await ctx.matrixCall(async () => {
    const levels = (await readPowerLevels(ctx)) ?? {};
    const users = { ...((levels.users ?? {}) as Record<string, number>) };
    if (powerOf(levels, matrixUserId) === level) return;
    if (level === levelOf(levels, "users_default", 0)) delete users[matrixUserId];
    else users[matrixUserId] = level;
    await ctx.deps.matrix.sendState(ctx.room, creatorOf(ctx), "m.room.power_levels", "", { ...levels, users });
  });
}
