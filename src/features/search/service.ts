import type { ServiceDeps } from "../../modules/deps.ts";
import { readableChannel } from "../../modules/access.ts";
import { threadStats, type ThreadStats } from "../../store/messages.ts";
import { RANKED_MATCHES, searchMessages, type RankedRow } from "./store.ts";
import { callerMicrodaos } from "../../http/auth/scope.ts";

export interface SearchPage {
  hits: RankedRow[];
  threads: Map<string, ThreadStats>;
  /** Pass back as ?offset= for the next page; null on the last page. */
  nextOffset: number | null;
}

export class SearchService {
  constructor(private readonly deps: ServiceDeps) {}

  async search(
    callerId: string,
    opts: { q: string; channelId: string | null; senderId: string | null; limit: number; offset: number },
  ): Promise<SearchPage> {
    // A channel the caller may not read is a 404, as everywhere else, not an empty result.
    if (opts.channelId) await readableChannel(this.deps.sql, callerId, opts.channelId);
    // Only the newest RANKED_MATCHES matches are ranked: past them there is nothing to page to.
    if (opts.offset >= RANKED_MATCHES) return { hits: [], threads: new Map(), nextOffset: null };
    const hits = await searchMessages(this.deps.sql, {
      callerId,
      callerMicrodaos: callerMicrodaos(),
      query: opts.q,
      channelId: opts.channelId,
      senderId: opts.senderId,
      limit: opts.limit,
      offset: opts.offset,
    });
    const threads = await threadStats(this.deps.sql, hits.map((h) => h.id));
    const next = opts.offset + opts.limit;
    return { hits, threads, nextOffset: hits.length === opts.limit && next < RANKED_MATCHES ? next : null };
  }
}
