import type { Sql } from "./db.ts";

/** SQLSTATE raised by the fence triggers (migration 016) when a write comes from a process that lost the resource. */
export const FENCED_SQLSTATE = "DA001";

export const channelResource = (channelId: string) => `channel:${channelId}`;

/**
 * Takes a resource over for this process and returns its new epoch. The upsert waits for the
 * previous holder's in-flight writes (they hold the row FOR SHARE); once it commits, any
 * later write of theirs is refused.
 */
export async function claimFence(sql: Sql, resource: string, owner: string): Promise<number> {
  const [row] = await sql<{ epoch: string }[]>`
    insert into cluster_fences (resource, owner, epoch) values (${resource}, ${owner}, 1)
    on conflict (resource) do update set owner = excluded.owner, epoch = cluster_fences.epoch + 1, claimed_at = now()
    returning epoch`;
  return Number(row!.epoch);
}

export async function fenceHolder(sql: Sql, resource: string): Promise<{ owner: string; epoch: number } | null> {
  const [row] = await sql<{ owner: string; epoch: string }[]>`select owner, epoch from cluster_fences where resource = ${resource}`;
  return row ? { owner: row.owner, epoch: Number(row.epoch) } : null;
}

export function isFenced(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: string }).code === FENCED_SQLSTATE;
}
