import { FormatRegistry } from "@sinclair/typebox";

/** The canonical 8-4-4-4-12 form, any version: what PostgreSQL's uuid type stores and prints. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Puts a regular expression back behind TypeBox's `uuid` format. Importing @elysiajs/openapi
 * replaces the shared format registry's entries with checks that build a zod schema on every
 * call, which cost more than the rest of a request's validation (a send validates several
 * ids). Called by the composition root, after every module (that one included) was loaded.
 */
export function useFastFormats(): void {
  FormatRegistry.Set("uuid", (value) => UUID.test(value));
}
