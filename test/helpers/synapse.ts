import { createClient, ClientEvent, SyncState, type MatrixClient } from "matrix-js-sdk";
import { logger as sdkGlobalLogger, type Logger as SdkLogger } from "matrix-js-sdk/lib/logger.js";
import pino from "pino";
import { sharedSecretRegistrationMac } from "../../scripts/synapse.ts";
import { SynapseMatrixBackend } from "../../src/matrix/synapse.ts";
import { requireServices } from "./services.ts";
import { channelTables } from "../../src/features/index.ts";

/**
 * The real Synapse started by `bun run synapse start`; its settings come from the environment
 * (`set -a; eval "$(bun run --silent synapse env)"; set +a`, as .ci/run does).
 */
export const synapse = process.env.MATRIX_HOMESERVER_URL
  ? {
      url: process.env.MATRIX_HOMESERVER_URL,
      serverName: process.env.MATRIX_SERVER_NAME || "daarion.city",
      asToken: process.env.MATRIX_AS_TOKEN ?? "",
      hsToken: process.env.MATRIX_HS_TOKEN ?? "",
      registrationSecret: process.env.SYNAPSE_REGISTRATION_SECRET ?? "",
    }
  : null;

export function synapseMissing(): boolean {
  if (synapse) return false;
  if (requireServices) throw new Error("REQUIRE_SERVICES=1 but MATRIX_HOMESERVER_URL is not set (run: bun run synapse start)");
  return true;
}

/** The service's environment for talking to this Synapse. */
export function synapseServiceEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    MATRIX_HOMESERVER_URL: synapse!.url,
    MATRIX_SERVER_NAME: synapse!.serverName,
    MATRIX_AS_TOKEN: synapse!.asToken,
    MATRIX_HS_TOKEN: synapse!.hsToken,
    MATRIX_RETRY_MAX_MS: "3000",
    ...extra,
  };
}

export function synapseBackend(retryBudgetMs = 3000): SynapseMatrixBackend {
  return new SynapseMatrixBackend({
    eventTypes: channelTables().handlers.types,
    baseUrl: synapse!.url,
    serverName: synapse!.serverName,
    asToken: synapse!.asToken,
    syncUserId: `@daarion-sync:${synapse!.serverName}`,
    retryBudgetMs,
    log: pino({ level: "silent" }),
  });
}

/** Registers a real (non-namespaced) Matrix user, the way an admin would, and logs it in. */
export async function registerRealUser(prefix = "bob"): Promise<{ userId: string; accessToken: string; localpart: string }> {
  const localpart = `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const password = crypto.randomUUID();
  const base = `${synapse!.url}/_synapse/admin/v1/register`;
  const { nonce } = (await (await fetch(base)).json()) as { nonce: string };
  const res = await fetch(base, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      nonce,
      username: localpart,
      password,
      admin: false,
      mac: sharedSecretRegistrationMac(synapse!.registrationSecret, nonce, localpart, password, false),
    }),
  });
  if (!res.ok) throw new Error(`register ${localpart}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { user_id: string; access_token: string };
  return { userId: body.user_id, accessToken: body.access_token, localpart };
}

const noop = () => {};
// Some of the SDK logs through its global logger, whatever the client's logger is.
(sdkGlobalLogger as unknown as { setLevel(level: string): void }).setLevel("error");
/** matrix-js-sdk logs every request; tests only want its errors. */
const quietLogger: SdkLogger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: (...msg: unknown[]) => console.error("[matrix-js-sdk]", ...msg),
  getChild: () => quietLogger,
};

/** A matrix-js-sdk client playing the Element user, synced and ready. */
export async function elementClient(user: { userId: string; accessToken: string; deviceId?: string }): Promise<MatrixClient> {
  const client = createClient({ baseUrl: synapse!.url, userId: user.userId, accessToken: user.accessToken, deviceId: user.deviceId, logger: quietLogger });
  const ready = new Promise<void>((resolve, reject) => {
    const onSync = (state: SyncState) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        client.off(ClientEvent.Sync, onSync);
        resolve();
      } else if (state === SyncState.Error) {
        reject(new Error("matrix-js-sdk sync failed"));
      }
    };
    client.on(ClientEvent.Sync, onSync);
  });
  await client.startClient({ initialSyncLimit: 20 });
  await ready;
  return client;
}

export { nextRoomEvent } from "./room-events.ts";
