/**
 * Channels are placed by shard: a fixed number of leases instead of one per channel. The
 * count is part of the deployment: every instance of a cluster must use the same.
 */
export const SHARD_COUNT = 64;

/** FNV-1a of the id: UUIDv7 prefixes are timestamps, so the id is hashed, not sliced. */
export function shardOf(channelId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < channelId.length; i++) {
    hash ^= channelId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % SHARD_COUNT;
}

export const shardKey = (shard: number) => `shard.${shard}`;
export const leaderKey = (role: string) => `leader.${role}`;
export const memberKey = (incarnation: string) => `member.${incarnation}`;
