import type { Sql } from "./db.ts";

/** Idempotency-Key claims and kept answers (idempotency_keys), and the heartbeats of the processes that own claims (idempotency_owners). */

export async function beatOwner(sql: Sql, token: string): Promise<void> {
  await sql`
      insert into idempotency_owners (owner) values (${token})
      on conflict (owner) do update set seen_at = now()`;
}

/** Rows of processes long gone; their claims are free either way. */
export async function pruneGoneOwners(sql: Sql): Promise<void> {
  await sql`delete from idempotency_owners where seen_at < now() - interval '1 hour'`;
}

export async function withdrawOwner(sql: Sql, token: string): Promise<void> {
  await sql`delete from idempotency_owners where owner = ${token}`;
}

export async function pruneIdempotencyKeys(sql: Sql, retention: string): Promise<void> {
  await sql`delete from idempotency_keys where created_at < now() - ${retention}::interval`;
}

/**
 * Claims the scope for this owner: a new key, or a running claim of the same request whose
 * owner is gone (or is this process, when it is not running it any more). True if claimed.
 */
export async function claimIdempotencyKey(
  sql: Sql,
  c: { scope: string; hash: string; owner: string; runningHere: boolean; ownerGoneAfter: string },
): Promise<boolean> {
  const { scope, hash, runningHere } = c;
  const [claimed] = await sql`
          insert into idempotency_keys (scope, request_hash, owner) values (${scope}, ${hash}, ${c.owner})
          on conflict (scope) do update set created_at = now(), owner = ${c.owner}
            where idempotency_keys.state = 'running' and idempotency_keys.request_hash = ${hash}
              and (case when idempotency_keys.owner = ${c.owner} then ${!runningHere}
                   else not exists (
                     select 1 from idempotency_owners o
                     where o.owner = idempotency_keys.owner and o.seen_at > now() - ${c.ownerGoneAfter}::interval)
                   end)
          returning scope`;
  return Boolean(claimed);
}

export interface IdempotencyKeyRow {
  request_hash: string;
  state: string;
  status: number | null;
  response: unknown;
}

export async function findIdempotencyKey(sql: Sql, scope: string): Promise<IdempotencyKeyRow | null> {
  const [row] = await sql<IdempotencyKeyRow[]>`select request_hash, state, status, response from idempotency_keys where scope = ${scope}`;
  return row ?? null;
}

export async function keepIdempotentAnswer(sql: Sql, scope: string, status: number, response: unknown): Promise<void> {
  await sql`
          update idempotency_keys set state = 'done', status = ${status}, response = ${sql.json((response ?? null) as never)}
          where scope = ${scope}`;
}

export async function dropRunningClaim(sql: Sql, scope: string): Promise<void> {
  await sql`delete from idempotency_keys where scope = ${scope} and state = 'running'`;
}
