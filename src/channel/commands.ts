import type { ChannelContext } from "./context.ts";

/**
 * A named command that runs inside a channel's loop. Its args are plain JSON values, so a
 * command can be forwarded to the instance that owns the channel.
 */
export type ChannelCommand<A = any, R = unknown> = (ctx: ChannelContext, args: A) => Promise<R>;
export type CommandTable = Record<string, ChannelCommand>;

/**
 * Every command by name, with its args and result: each feature's commands.ts adds its own
 * (`declare module ".../channel/commands.ts" { interface ChannelCommands extends typeof x }`),
 * so `run(name, args)` is typed without the channel importing any feature.
 */
export interface ChannelCommands {}

export type CommandName = keyof ChannelCommands & string;
export type ArgsOf<K extends CommandName> = ChannelCommands[K] extends ChannelCommand<infer A, unknown> ? A : never;
export type ResultOf<K extends CommandName> = ChannelCommands[K] extends ChannelCommand<any, infer R> ? R : never;

/** Merges the features' command tables; two commands of one name are an error at start-up. */
export function commandTable(tables: CommandTable[]): CommandTable {
  const all: CommandTable = {};
  for (const table of tables) {
    for (const [name, command] of Object.entries(table)) {
      if (all[name]) throw new Error(`two channel commands are named ${name}`);
      all[name] = command;
    }
  }
  return all;
}
