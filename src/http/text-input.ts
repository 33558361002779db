import { Elysia } from "elysia";
import { AppError } from "../errors.ts";

/**
 * PostgreSQL text cannot hold U+0000, so a NUL anywhere in the body, query or path would fail
 * deep in a write (as a 5xx, or a Matrix call half done). Refuse it up front as a 400.
 */
export const rejectNulCharacters = () =>
  new Elysia({ name: "text-input" }).onTransform({ as: "global" }, ({ body, query, params }) => {
    for (const [where, value] of [["body", body], ["query", query], ["path", params]] as const) {
      if (hasNul(value)) throw new AppError(400, "VALIDATION_FAILED", `invalid ${where}: text may not contain NUL (U+0000) characters`);
    }
  });

function hasNul(value: unknown, depth = 0): boolean {
  if (typeof value === "string") return value.includes("\u0000");
  if (depth > 32 || value === null || typeof value !== "object" || value instanceof Blob) return false;
  return Object.entries(value).some(([k, v]) => k.includes("\u0000") || hasNul(v, depth + 1));
}
