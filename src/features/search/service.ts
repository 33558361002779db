import type { ServiceDeps } from "../deps.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { extrasOf, type MessageExtras } from "../../store/message-extras.ts";
import { RANKED_MATCHES, searchChannel, searchReadable, type RankedRow } from "../../store/search.ts";
import { callerMicrodaos } from "../../access/caller-scope.ts";

export interface SearchPage {
  hits: RankedRow[];
  threads: MessageExtras["threads"];
  reactions: MessageExtras["reactions"];
  /** Pass back as ?offset= for the next page; null on the last page. */
  nextOffset: number | null;
}

const nothing = (): SearchPage => ({ hits: [], threads: new Map(), reactions: new Map(), nextOffset: null });

export class SearchService {
  constructor(private readonly deps: ServiceDeps) {}

  async search(
    callerId: string,
    opts: { q: string; channelId: string | null; senderId: string | null; limit: number; offset: number },
  ): Promise<SearchPage> {
    if (opts.channelId) {
      // A channel the caller may not read is a 404, as everywhere else, not an empty result.
      const { channel } = await readableChannel(this.deps.sql, callerId, opts.channelId);
      // Confidential channels are skipped even when named, as by the search across channels.
      if (channel.is_encrypted) return nothing();
    }
    // Only the newest RANKED_MATCHES matches are ranked: past them there is nothing to page to.
    if (opts.offset >= RANKED_MATCHES) return nothing();
    const filter = { query: opts.q, senderId: opts.senderId, limit: opts.limit, offset: opts.offset };
    const hits = opts.channelId
      ? await searchChannel(this.deps.sql, opts.channelId, filter)
      : await searchReadable(this.deps.sql, { ...filter, callerId, callerMicrodaos: callerMicrodaos() });
    const { threads, reactions } = await extrasOf(this.deps.sql, hits.map((h) => h.id), callerId);
    const next = opts.offset + opts.limit;
    return { hits, threads, reactions, nextOffset: hits.length === opts.limit && next < RANKED_MATCHES ? next : null };
  }
}
