import { optionalCaller } from "./identity.ts";
import { Elysia } from "elysia";
import { createHash } from "node:crypto";
import type { Sql } from "../store/db.ts";
import { AppError } from "../errors.ts";

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const RETENTION = "24 hours";

type Claim = { scope: string };
const claims = new WeakMap<Request, Claim>();
// A claim still 'running' after this long was left by a crash: a retry may take it over. That is
// safe for sends, whose message id derives from the key (idempotentId), so a rerun finds the
// message the first attempt made instead of making another.
const ABANDONED_AFTER = "15 seconds";

/**
 * A stable uuid for what a request with this Idempotency-Key creates, so that even a rerun
 * (after a crash lost the first answer) creates the same thing, once.
 */
export function idempotentId(callerId: string, path: string, key: string): string {
  const h = createHash("sha256").update(`${callerId} ${path} ${key}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50; // version 5-style
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function hashRequest(body: unknown): string {
  const h = createHash("sha256");
  h.update(JSON.stringify(body ?? null, (_k, v) => (v instanceof Blob ? { size: v.size, type: v.type } : v)));
  return h.digest("hex");
}

/**
 * `Idempotency-Key` on every POST: the first request with a key runs and its answer is kept
 * (at least 24 h); a retry with the same key and body gets that answer back, marked
 * `Idempotent-Replayed: true`, and creates nothing; the same key with another body is 422;
 * a retry while the first is still running is 409. Keys are scoped by caller and path. A
 * request that fails is forgotten, so its retry runs again.
 */
export const idempotency = (sql: Sql) => {
  return new Elysia({ name: "idempotency" })
    .onBeforeHandle({ as: "global" }, async ({ request, headers, body, set }) => {
      if (request.method !== "POST") return;
      const key = headers["idempotency-key"];
      if (key === undefined) return;
      if (!KEY_PATTERN.test(key)) {
        throw new AppError(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1 to 255 printable ASCII characters");
      }
      // Scoped by the authenticated caller (never a header a caller could pick in jwt mode).
      const scope = `${(await optionalCaller(request)) ?? "-"} ${new URL(request.url).pathname} ${key}`;
      const hash = hashRequest(body);
      if (Math.random() < 0.01) await sql`delete from idempotency_keys where created_at < now() - ${RETENTION}::interval`;
      const [claimed] = await sql`
        insert into idempotency_keys (scope, request_hash) values (${scope}, ${hash})
        on conflict (scope) do update set created_at = now()
          where idempotency_keys.state = 'running' and idempotency_keys.request_hash = ${hash}
            and idempotency_keys.created_at < now() - ${ABANDONED_AFTER}::interval
        returning scope`;
      if (claimed) {
        claims.set(request, { scope });
        return;
      }
      const [row] = await sql`select request_hash, state, status, response from idempotency_keys where scope = ${scope}`;
      if (!row) throw new AppError(409, "IDEMPOTENCY_IN_PROGRESS", "a request with this Idempotency-Key is in progress; retry shortly", { "Retry-After": "1" });
      if (row.request_hash !== hash) {
        throw new AppError(422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different request body");
      }
      if (row.state !== "done") {
        throw new AppError(409, "IDEMPOTENCY_IN_PROGRESS", "a request with this Idempotency-Key is in progress; retry shortly", { "Retry-After": "1" });
      }
      set.status = row.status as number;
      set.headers["idempotent-replayed"] = "true";
      return row.response;
    })
    .onAfterHandle({ as: "global" }, async ({ request, set, responseValue }) => {
      const claim = claims.get(request);
      if (!claim) return;
      claims.delete(request);
      const status = typeof set.status === "number" ? set.status : 200;
      await sql`
        update idempotency_keys set state = 'done', status = ${status}, response = ${sql.json((responseValue ?? null) as never)}
        where scope = ${claim.scope}`;
    })
    // A failed request is forgotten before its error is answered, so a retry runs again.
    // (Registered before the error formatter, which answers and ends the error chain.)
    .onError({ as: "global" }, async ({ request }) => {
      await forget(request);
    })
    .onAfterResponse({ as: "global" }, async ({ request }) => {
      await forget(request);
    });

  async function forget(request: Request) {
    const claim = claims.get(request);
    if (!claim) return;
    claims.delete(request);
    // If the database is down this fails too; the claim is then abandoned and taken over later.
    await sql`delete from idempotency_keys where scope = ${claim.scope} and state = 'running'`.catch(() => {});
  }
};
