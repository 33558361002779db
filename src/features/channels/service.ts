import type { ServiceDeps } from "../deps.ts";
import type { ChannelRow } from "../../store/rows.ts";
import { beginChannelCreation, findChannel, listVisibleChannels, slugTaken, type ChannelPatch } from "../../store/channels.ts";
import { announceChannelCreated, finishChannelCreation, slugTakenError } from "./creation.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { requireAdmin } from "../../domain/rights.ts";
import { callerMicrodaos } from "../../access/caller-scope.ts";
import type { CreateChannelBody } from "./model.ts";
import { unreadCounts } from "../../store/read-state.ts";
import { syncSpaceQuietly } from "../spaces/sync.ts";

export class ChannelService {
  constructor(private readonly deps: ServiceDeps) {}

  list(callerId: string, microdaoId: string | null, includeArchived = false): Promise<ChannelRow[]> {
    return listVisibleChannels(this.deps.sql, callerId, microdaoId, includeArchived, callerMicrodaos());
  }

  /** The caller's unread messages per channel (see features/presence). */
  unreadCounts(callerId: string, channelIds: string[]): Promise<Map<string, number>> {
    return unreadCounts(this.deps.sql, callerId, channelIds);
  }

  async get(callerId: string, channelId: string): Promise<ChannelRow> {
    return (await readableChannel(this.deps.sql, callerId, channelId)).channel;
  }

  /**
   * Records the creation (with the channel's id: derived from the Idempotency-Key when there is
   * one), then makes the room and the channel rows. A creation cut short by a crash is finished
   * by its retry: the same key, or the same creator asking for the same slug again.
   */
  async create(callerId: string, body: CreateChannelBody, keyedId?: string): Promise<ChannelRow> {
    const { sql } = this.deps;
    if (keyedId) {
      // A rerun of a creation that finished before its answer was lost: that channel.
      const made = await findChannel(sql, keyedId);
      if (made?.created_by === callerId) {
        await announceChannelCreated(this.deps, made);
        return made;
      }
    }
    if (await slugTaken(sql, body.slug, body.microdao_id)) throw slugTakenError(body.slug, body.microdao_id);
    const creation = await beginChannelCreation(sql, {
      channel_id: keyedId ?? Bun.randomUUIDv7(),
      slug: body.slug,
      microdao_id: body.microdao_id,
      created_by: callerId,
      request: body,
    });
    // Someone else's creation of this slug is under way: theirs to finish.
    if (creation.created_by !== callerId) throw slugTakenError(body.slug, body.microdao_id);
    return finishChannelCreation(this.deps, creation);
  }

  async update(callerId: string, channelId: string, patch: ChannelPatch): Promise<ChannelRow> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    requireAdmin(access);
    const updated = await this.deps.registry.run(channelId, "channels.update", { actorId: callerId, patch });
    // A channel made private leaves the space's children; made public or microdao, it joins them.
    if (updated.visibility !== access.channel.visibility) await syncSpaceQuietly(this.deps, updated.microdao_id);
    return updated;
  }
}

