import { ChannelRegistry } from "../actors/registry.ts";
import type { ChannelActor } from "../actors/actor.ts";
import { outsideRequest } from "../request-context.ts";

/**
 * The channel registry, with every actor started outside the context of the request that
 * happened to spawn it: an actor's loop outlives that request and serves others, so its log
 * lines (which name the channel) must not carry that one request's id.
 */
export class RequestFreeRegistry extends ChannelRegistry {
  override get(channelId: string): ChannelActor {
    return outsideRequest(() => super.get(channelId));
  }
}
