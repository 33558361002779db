/**
 * `bun src/store/pglite-initdb.ts <dir>`: makes a new embedded database in <dir> and exits.
 * db.ts runs it in a child process when DATA_DIR holds no database yet (see initdbInChild).
 */
import { PGlite } from "@electric-sql/pglite";
import { embeddedPgliteOptions } from "./pglite-options.ts";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: bun src/store/pglite-initdb.ts <data directory>");
  process.exit(2);
}
const pglite = await PGlite.create(dir, embeddedPgliteOptions(PGlite.defaultStartParams));
await pglite.close();
