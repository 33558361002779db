import { optionalCaller } from "./identity.ts";
import { Elysia } from "elysia";
import { createHash } from "node:crypto";
import type { Sql } from "../store/db.ts";
import { AppError } from "../errors.ts";
import { OWNER_GONE_AFTER, type IdempotencyOwner } from "./idempotency-owner.ts";
import { claimIdempotencyKey, dropRunningClaim, findIdempotencyKey, keepIdempotentAnswer, pruneIdempotencyKeys } from "../store/idempotency.ts";

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const RETENTION = "24 hours";

type Claim = { scope: string };
const claims = new WeakMap<Request, Claim>();

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

/**
 * The idempotentId of what this request creates, when it carries an Idempotency-Key (scoped
 * like the key itself: caller and path); undefined without one.
 */
export function requestIdempotentId(request: Request, callerId: string | null): string | undefined {
  const key = request.headers.get("idempotency-key");
  return key ? idempotentId(callerId ?? "-", new URL(request.url).pathname, key) : undefined;
}

/** The body's fields and, for an upload, the file's bytes: another file under the same key is another request. */
async function hashRequest(body: unknown): Promise<string> {
  const h = createHash("sha256");
  const blobs: Blob[] = [];
  const describe = (v: Blob) => ({ blob: blobs.push(v) - 1, size: v.size, type: v.type, name: v instanceof File ? v.name : null });
  h.update(JSON.stringify(body ?? null, (_k, v) => (v instanceof Blob ? describe(v) : v)));
  for (const blob of blobs) h.update(new Uint8Array(await blob.arrayBuffer()));
  return h.digest("hex");
}

/**
 * `Idempotency-Key` on every POST: the first request with a key runs and its answer is kept
 * (at least 24 h); a retry with the same key and body gets that answer back, marked
 * `Idempotent-Replayed: true`, and creates nothing; the same key with another body is 422;
 * a retry while the first is still running is 409. Keys are scoped by caller and path. A
 * request that fails is forgotten, so its retry runs again. A claim is taken over only when
 * its owner process is gone (see IdempotencyOwner); that is safe because what a request
 * creates has an id derived from its key (idempotentId), so the rerun finds it.
 */
export const idempotency = (sql: Sql, owner: IdempotencyOwner) => {
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
      const hash = await hashRequest(body);
      if (Math.random() < 0.01) await pruneIdempotencyKeys(sql, RETENTION);
      // Marked running here before the claim, so a concurrent twin in this process never takes it over.
      const runningHere = owner.running.has(scope);
      if (!runningHere) owner.running.add(scope);
      let claimed;
      try {
        claimed = await claimIdempotencyKey(sql, { scope, hash, owner: owner.token, runningHere, ownerGoneAfter: OWNER_GONE_AFTER });
      } finally {
        if (!claimed && !runningHere) owner.running.delete(scope);
      }
      if (claimed) {
        claims.set(request, { scope });
        return;
      }
      const row = await findIdempotencyKey(sql, scope);
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
      try {
        await keepIdempotentAnswer(sql, claim.scope, status, responseValue);
      } finally {
        // Only once the answer is stored: until then a twin here must still be told 409.
        owner.running.delete(claim.scope);
      }
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
    // If the database is down this fails too; the claim is then abandoned, and its next retry
    // here takes it over (it is no longer running in this process).
    await dropRunningClaim(sql, claim.scope).catch(() => {});
    owner.running.delete(claim.scope);
  }
};
