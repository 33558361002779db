import pino from "pino";
import { openDatabase } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrate.ts";
import { LocalMatrixBackend } from "../../src/matrix/local.ts";
import type { MatrixBackend } from "../../src/matrix/port.ts";
import { databaseUrl, freshPostgresDatabase } from "./services.ts";
import { synapse, synapseBackend, synapseMissing } from "./synapse.ts";
import { SYNAPSE_TURN_TTL_S, SYNAPSE_TURN_URIS, URL_PREVIEW_ALLOWED_RANGES, turnSharedSecret } from "../../scripts/synapse.ts";
import { AddressGuard } from "../../src/domain/fetch-guard.ts";

/** One adapter of the Matrix port, opened fresh for a contract suite. */
export interface MatrixAdapter {
  name: "local" | "synapse";
  serverName: string;
  /** The TURN shared secret behind turnServer's passwords (both adapters hand out SYNAPSE_TURN_URIS). */
  turnSecret: string;
  open(): Promise<{ backend: MatrixBackend; close(): Promise<void> }>;
}

const log = pino({ level: "silent" });
const LOCAL_TURN_SECRET = "contract-turn-shared-secret";

/**
 * Every adapter the contract suites run against: the local backend always (on a fresh
 * PostgreSQL database when DATABASE_URL is set, else embedded PGlite), and Synapse when its
 * settings are in the environment (required under REQUIRE_SERVICES=1).
 */
export function matrixAdapters(): MatrixAdapter[] {
  const adapters: MatrixAdapter[] = [
    {
      name: "local",
      serverName: "daarion.city",
      turnSecret: LOCAL_TURN_SECRET,
      async open() {
        const fresh = databaseUrl ? await freshPostgresDatabase("daarion_contract") : null;
        const db = await openDatabase({ url: fresh?.url, dataDir: ":memory:", poolMax: 4 }, log);
        await migrate(db.sql, log);
        // Previews let 127.0.0.1 through, as the development Synapse's url_preview_ip_range_whitelist does.
        const previews = { guard: new AddressGuard(URL_PREVIEW_ALLOWED_RANGES), timeoutMs: 5000, maxBytes: 1024 * 1024 };
        const backend = new LocalMatrixBackend(db.sql, "daarion.city", { uris: SYNAPSE_TURN_URIS, sharedSecret: LOCAL_TURN_SECRET, ttlS: SYNAPSE_TURN_TTL_S }, previews);
        return {
          backend,
          async close() {
            await backend.close();
            await db.close();
            await fresh?.drop();
          },
        };
      },
    },
  ];
  if (!synapseMissing()) {
    adapters.push({
      name: "synapse",
      serverName: synapse!.serverName,
      turnSecret: turnSharedSecret(synapse!.registrationSecret),
      async open() {
        const backend = synapseBackend();
        return { backend, close: () => backend.close() };
      },
    });
  }
  return adapters;
}
