import type { ChannelContext } from "../../channel/context.ts";
import { armCall } from "./announce.ts";

/** Sets the channel's expiry timer in this process (after a restart), inside the channel's loop. */
async function armExpiry(ctx: ChannelContext, _args: Record<string, never>): Promise<void> {
  await armCall({ deps: ctx.deps, channel: ctx.channel });
}

export const callCommands = { "calls.arm": armExpiry };

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends CallCommands {}
}
type CallCommands = typeof callCommands;
