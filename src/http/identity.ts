import { t } from "elysia";
import { DAARION_ID_PATTERN } from "../matrix/mapping.ts";
import { AppError } from "../errors.ts";

const daarionId = new RegExp(DAARION_ID_PATTERN);

/** Documented on every route that needs a caller; checked by callerFrom for a 401, not a 400. */
export const IdentityHeaders = t.Object({
  "x-user-id": t.Optional(t.String({ description: "The caller: `user:…` or `agent:…` (development identity until JWT lands)." })),
  "idempotency-key": t.Optional(
    t.String({ description: "On POST: a retry with the same key and body returns the first answer and creates nothing (kept 24 h)." }),
  ),
});

export function callerFrom(value: string | undefined | null): string {
  if (!value) throw new AppError(401, "UNAUTHENTICATED", "X-User-Id header is required (user:… or agent:…)");
  if (!daarionId.test(value)) throw new AppError(401, "UNAUTHENTICATED", "X-User-Id must be user:<id> or agent:<id>");
  return value;
}
