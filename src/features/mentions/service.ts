import type { ServiceDeps } from "../deps.ts";
import { callerMicrodaos } from "../../access/caller-scope.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { extrasOf, type MessageExtras } from "../../store/message-extras.ts";
import { listMentions, type MentionRow } from "../../store/mentions.ts";

export interface MentionPage extends MessageExtras {
  rows: MentionRow[];
  /** Pass back as ?cursor= for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

export class MentionService {
  constructor(private readonly deps: ServiceDeps) {}

  /** The caller's mentions, newest first, in the channels they may still read. */
  async list(callerId: string, opts: { limit: number; cursor: string | null; channelId: string | null }): Promise<MentionPage> {
    // A channel the caller may not read is a 404, as everywhere else, not an empty page.
    if (opts.channelId) await readableChannel(this.deps.sql, callerId, opts.channelId);
    const rows = await listMentions(this.deps.sql, {
      memberId: callerId,
      microdaos: callerMicrodaos(),
      beforePosition: opts.cursor === null ? null : Number(opts.cursor),
      channelId: opts.channelId,
      limit: opts.limit,
    });
    const ids = rows.map((r) => r.id);
    const { threads, reactions } = await extrasOf(this.deps.sql, ids, callerId);
    const last = rows.at(-1);
    return { rows, threads, reactions, nextCursor: rows.length === opts.limit && last ? String(last.mention_position) : null };
  }
}
