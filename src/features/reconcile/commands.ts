import type { ChannelContext } from "../../channel/context.ts";
import { markMessageDeleted } from "../../store/edits.ts";
import type { MessageRow } from "../../store/rows.ts";
import { announceDeletion } from "../relations/announce.ts";
import { RECONCILE_ACTOR, type ExtraEntry } from "./reconcile.ts";

/** Indexed messages that are not in the room (any more): deleted in the index, announced as deletions. */
async function markExtraDeleted(ctx: ChannelContext, cmd: { extra: ExtraEntry[] }): Promise<number> {
  let fixed = 0;
  for (const entry of cmd.extra) {
    const deleted: MessageRow | null = await ctx.deps.sql.begin((tx) => markMessageDeleted(tx, entry.message_id, new Date()));
    if (!deleted) continue;
    // No redaction event exists for a message that was never in the room; the message's own
    // event id stands in for it.
    announceDeletion(ctx, deleted, { redactionEventId: entry.matrix_event_id, deletedBy: RECONCILE_ACTOR });
    fixed++;
  }
  return fixed;
}

export const reconcileCommands = { "reconcile.markDeleted": markExtraDeleted };

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends ReconcileCommands {}
}
type ReconcileCommands = typeof reconcileCommands;
