import { Type as t, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { hostname } from "node:os";
import { AddressGuard } from "./domain/fetch-guard.ts";

const LogLevel = t.Union(
  ["fatal", "error", "warn", "info", "debug", "trace", "silent"].map((l) => t.Literal(l)),
);

/** Every variable the service reads. Defaults describe the embedded, single-laptop setup. */
export const ConfigSchema = t.Object({
  PORT: t.Integer({ minimum: 0, maximum: 65535, default: 7004 }),
  /** Unset: 127.0.0.1 in dev mode (which trusts X-User-Id), 0.0.0.0 in jwt mode (see defaultHost). */
  HOST: t.Optional(t.String({ minLength: 1 })),
  DATA_DIR: t.String({ minLength: 1, default: "./data" }),
  DATABASE_URL: t.Optional(t.String({ pattern: "^postgres(ql)?://" })),
  DATABASE_POOL_MAX: t.Integer({ minimum: 1, maximum: 100, default: 10 }),
  NATS_URL: t.Optional(t.String({ pattern: "^(nats|tls|ws|wss)://" })),
  MATRIX_HOMESERVER_URL: t.Optional(t.String({ pattern: "^https?://" })),
  MATRIX_SERVER_NAME: t.String({ pattern: "^[A-Za-z0-9.-]+(:[0-9]+)?$", default: "daarion.city" }),
  MATRIX_AS_TOKEN: t.Optional(t.String({ minLength: 8 })),
  MATRIX_HS_TOKEN: t.Optional(t.String({ minLength: 8 })),
  MATRIX_AS_SENDER_LOCALPART: t.String({ pattern: "^[a-z0-9._=-]+$", default: "daarion-bot" }),
  MATRIX_SYNC_USER_LOCALPART: t.String({ pattern: "^[a-z0-9._=-]+$", default: "daarion-sync" }),
  MATRIX_AS_ID: t.String({ minLength: 1, default: "daarion-messaging" }),
  MATRIX_EVENTS_MODE: t.Union([t.Literal("sync"), t.Literal("push")], { default: "sync" }),
  MATRIX_SYNC_TIMELINE_LIMIT: t.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  MATRIX_RETRY_MAX_MS: t.Integer({ minimum: 0, maximum: 600000, default: 8000 }),
  LOG_LEVEL: t.String({ default: "info" }),
  SHUTDOWN_TIMEOUT_MS: t.Integer({ minimum: 1000, maximum: 300000, default: 20000 }),
  SEND_CONFIRM_TIMEOUT_MS: t.Integer({ minimum: 0, maximum: 120000, default: 5000 }),
  ACTOR_MAILBOX_SIZE: t.Integer({ minimum: 1, maximum: 100000, default: 256 }),
  ACTOR_IDLE_MS: t.Integer({ minimum: 100, default: 60000 }),
  SYNC_TIMEOUT_MS: t.Integer({ minimum: 0, maximum: 120000, default: 30000 }),
  MAX_UPLOAD_BYTES: t.Integer({ minimum: 1, maximum: 1073741824, default: 10485760 }),
  // Voice messages: the longest recording read (15 minutes) and the time reading one may take.
  VOICE_MAX_DURATION_MS: t.Integer({ minimum: 1000, maximum: 86400000, default: 900000 }),
  VOICE_DECODE_TIMEOUT_MS: t.Integer({ minimum: 100, maximum: 600000, default: 10000 }),
  WS_BACKPRESSURE_LIMIT_BYTES: t.Integer({ minimum: 1024, maximum: 1073741824, default: 1048576 }),
  MAX_BODY_BYTES: t.Integer({ minimum: 1024, maximum: 104857600, default: 262144 }),
  // Token buckets (per minute / capacity); a rate of 0 turns that bucket off.
  RATE_LIMIT_USER_PER_MIN: t.Integer({ minimum: 0, default: 600 }),
  RATE_LIMIT_USER_BURST: t.Integer({ minimum: 1, default: 200 }),
  RATE_LIMIT_CHANNEL_PER_MIN: t.Integer({ minimum: 0, default: 1200 }),
  RATE_LIMIT_CHANNEL_BURST: t.Integer({ minimum: 1, default: 300 }),
  RATE_LIMIT_READ_PER_MIN: t.Integer({ minimum: 0, default: 3000 }),
  RATE_LIMIT_READ_BURST: t.Integer({ minimum: 1, default: 600 }),
  // Requests with no verified caller, per client address; TRUSTED_PROXIES may name that address
  // in X-Forwarded-For (IPs or CIDRs, comma-separated; checked in src/http/client-address.ts).
  RATE_LIMIT_ADDRESS_PER_MIN: t.Integer({ minimum: 0, default: 120 }),
  RATE_LIMIT_ADDRESS_BURST: t.Integer({ minimum: 1, default: 60 }),
  /** How often each instance sends PostgreSQL what its in-memory buckets took and reads back the others' (README "Rate limits"). */
  RATE_LIMIT_RECONCILE_MS: t.Integer({ minimum: 10, maximum: 60000, default: 500 }),
  TRUSTED_PROXIES: t.Optional(t.String({ pattern: "^[0-9A-Fa-f:.]+(/[0-9]{1,3})?([\\s,]+[0-9A-Fa-f:.]+(/[0-9]{1,3})?)*$" })),
  WS_MAX_FRAMES_PER_SEC: t.Integer({ minimum: 0, default: 20 }),
  /** The local Matrix backend's /voip/turnServer (README "Calls"): TURN URIs, comma-separated; with Synapse its own turn_uris count. */
  TURN_URIS: t.Optional(t.String({ pattern: "^(turns?|stun):[^\\s,]+(\\s*,\\s*(turns?|stun):[^\\s,]+)*$" })),
  TURN_SHARED_SECRET: t.Optional(t.String({ minLength: 8 })),
  TURN_TTL_S: t.Integer({ minimum: 60, maximum: 604800, default: 86400 }),
  // Link previews (README "Link previews"): the preview worker, and the built-in fetcher of the local Matrix backend.
  LINK_PREVIEWS: t.Union([t.Literal("on"), t.Literal("off")], { default: "on" }),
  /** Addresses or CIDRs the built-in fetcher may reach although they are private, loopback, …; comma-separated. */
  LINK_PREVIEW_ALLOWED_ADDRESSES: t.Optional(t.String({ pattern: "^[0-9A-Fa-f:.]+(/[0-9]{1,3})?([\\s,]+[0-9A-Fa-f:.]+(/[0-9]{1,3})?)*$" })),
  LINK_PREVIEW_TIMEOUT_MS: t.Integer({ minimum: 100, maximum: 120000, default: 10000 }),
  LINK_PREVIEW_MAX_BYTES: t.Integer({ minimum: 1024, maximum: 10485760, default: 1048576 }),
  LINK_PREVIEW_CONCURRENCY: t.Integer({ minimum: 1, maximum: 64, default: 4 }),
  LINK_PREVIEW_CACHE_TTL_S: t.Integer({ minimum: 0, maximum: 604800, default: 3600 }),
  NODE_ENV: t.Optional(t.String()),
  /** 1: NODE_ENV=production may run on the embedded stand-ins (a single-box deployment). */
  ALLOW_EMBEDDED: t.Optional(t.Union([t.Literal("0"), t.Literal("1")])),
  /** dev: X-User-Id is trusted (embedded setup); jwt: a verified Bearer token is required. */
  AUTH_MODE: t.Optional(t.Union([t.Literal("dev"), t.Literal("jwt")])),
  JWT_SECRET: t.Optional(t.String({ minLength: 32 })),
  JWT_JWKS_URL: t.Optional(t.String({ pattern: "^https?://" })),
  JWT_ISSUER: t.Optional(t.String({ minLength: 1 })),
  JWT_AUDIENCE: t.Optional(t.String({ minLength: 1 })),
  JWT_CLOCK_SKEW_S: t.Integer({ minimum: 0, maximum: 600, default: 30 }),
  INTERNAL_SERVICE_TOKEN: t.Optional(t.String({ minLength: 16 })),
  /** When set, GET /metrics needs it as a Bearer token (README "Metrics"); unset, /metrics is open. */
  METRICS_TOKEN: t.Optional(t.String({ minLength: 16 })),
  /** Browser origins allowed by CORS, comma-separated (src/http/cors.ts); unset: localhost in dev, none in production. */
  CORS_ORIGINS: t.Optional(t.String({ minLength: 1 })),
  /** on: one of several instances on PostgreSQL and NATS (README "Running several instances"). */
  CLUSTER: t.Union([t.Literal("on"), t.Literal("off")], { default: "off" }),
  /** Names the cluster: its lease bucket and its NATS subjects. Two clusters on one NATS need two names. */
  CLUSTER_NAME: t.String({ pattern: "^[A-Za-z0-9_-]{1,32}$", default: "daarion" }),
  /** This instance's name in the cluster; unset: the host name and the process id. */
  INSTANCE_ID: t.Optional(t.String({ pattern: "^[A-Za-z0-9_-]{1,64}$" })),
  /** How long a channel shard's lease outlives its holder's last renewal: the failover time after a kill -9. */
  CLUSTER_LEASE_TTL_MS: t.Integer({ minimum: 1000, maximum: 120000, default: 5000 }),
  /** How long a request waits for a channel that has no owner (a takeover) before 503 with Retry-After. */
  CLUSTER_OWNER_WAIT_MS: t.Integer({ minimum: 0, maximum: 60000, default: 8000 }),
});

/** The configuration after loadConfig: HOST is always resolved. */
export type Config = Omit<Static<typeof ConfigSchema>, "HOST"> & { HOST: string };

/** AUTH_MODE resolved: jwt when NODE_ENV=production and nothing else was said. */
export function authMode(config: Pick<Config, "AUTH_MODE" | "NODE_ENV">): "dev" | "jwt" {
  return config.AUTH_MODE ?? (config.NODE_ENV === "production" ? "jwt" : "dev");
}

/** Production: AUTH_MODE=jwt or NODE_ENV=production. Secrets must then be real. */
export function isProduction(config: Config): boolean {
  return authMode(config) === "jwt" || config.NODE_ENV === "production";
}

export class ConfigError extends Error {}

// Environment values are strings; the schema's integer variables are converted before checking.
const INTEGER_KEYS = new Set(
  Object.entries(ConfigSchema.properties)
    .filter(([, schema]) => (schema as { type?: string }).type === "integer")
    .map(([key]) => key),
);

/**
 * Reads the configuration from an environment map. Empty strings count as unset, so
 * `DATABASE_URL= bun run dev` falls back to the embedded database.
 * Throws ConfigError with one line naming the first bad variable.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key];
    if (value === undefined || value.trim() === "") continue;
    raw[key] = INTEGER_KEYS.has(key) && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value.trim();
  }
  const withDefaults = Value.Default(ConfigSchema, raw);
  const firstError = Value.Errors(ConfigSchema, withDefaults).First();
  if (firstError) {
    const name = firstError.path.replace(/^\//, "");
    const shown = holdsSecret(name) ? "" : `=${JSON.stringify(env[name] ?? "")}`;
    throw new ConfigError(`invalid environment variable ${name}${shown}: ${firstError.message}`);
  }
  const validated = withDefaults as Static<typeof ConfigSchema>;
  const config: Config = { ...validated, HOST: validated.HOST ?? defaultHost(validated) };
  if (config.MATRIX_HOMESERVER_URL && !config.MATRIX_AS_TOKEN) {
    throw new ConfigError("invalid environment variable MATRIX_AS_TOKEN: required when MATRIX_HOMESERVER_URL is set");
  }
  if (config.MATRIX_EVENTS_MODE === "push" && !config.MATRIX_HS_TOKEN) {
    throw new ConfigError("invalid environment variable MATRIX_HS_TOKEN: required when MATRIX_EVENTS_MODE=push");
  }
  if (Boolean(config.TURN_URIS) !== Boolean(config.TURN_SHARED_SECRET)) {
    const missing = config.TURN_URIS ? "TURN_SHARED_SECRET" : "TURN_URIS";
    throw new ConfigError(`invalid environment variable ${missing}: TURN_URIS and TURN_SHARED_SECRET go together`);
  }
  try {
    AddressGuard.parse(config.LINK_PREVIEW_ALLOWED_ADDRESSES);
  } catch (err) {
    throw new ConfigError(`invalid environment variable LINK_PREVIEW_ALLOWED_ADDRESSES: ${(err as Error).message}`);
  }
  checkAuth(config);
  checkProductionBackends(config);
  checkCluster(config);
  if (!LogLevel.anyOf.some((l) => l.const === config.LOG_LEVEL)) {
    throw new ConfigError(
      `invalid environment variable LOG_LEVEL=${JSON.stringify(config.LOG_LEVEL)}: expected one of fatal, error, warn, info, debug, trace, silent`,
    );
  }
  return config;
}

/**
 * Secrets, tokens and URLs (which may carry a password) are named in errors but never echoed:
 * a start-up error ends up in logs that many people read.
 */
function holdsSecret(name: string): boolean {
  return /SECRET|TOKEN|PASSWORD|_URL$/.test(name);
}

/** Dev mode trusts X-User-Id, so unless told otherwise it is reachable from this machine only. */
function defaultHost(config: Pick<Config, "AUTH_MODE" | "NODE_ENV">): string {
  return authMode(config) === "dev" ? "127.0.0.1" : "0.0.0.0";
}

/**
 * NODE_ENV=production runs on PostgreSQL, Synapse and NATS; the embedded stand-ins (one
 * process, one disk) only when ALLOW_EMBEDDED=1 says a single box is meant.
 */
function checkProductionBackends(config: Config): void {
  if (config.NODE_ENV !== "production" || config.ALLOW_EMBEDDED === "1") return;
  const standIns = [
    ["DATABASE_URL", config.DATABASE_URL, "the embedded PGlite"],
    ["MATRIX_HOMESERVER_URL", config.MATRIX_HOMESERVER_URL, "the built-in Matrix stand-in"],
    ["NATS_URL", config.NATS_URL, "the in-process event bus"],
  ] as const;
  const missing = standIns.find(([, value]) => !value);
  if (missing) {
    const [name, , standIn] = missing;
    throw new ConfigError(
      `invalid environment variable ${name}: required when NODE_ENV=production (unset runs ${standIn}; set ALLOW_EMBEDDED=1 for a single-box production)`,
    );
  }
}

/** Several instances share their state through PostgreSQL and NATS; the embedded stand-ins are one process's. */
function checkCluster(config: Config): void {
  if (config.CLUSTER !== "on") return;
  if (!config.DATABASE_URL) throw new ConfigError("invalid environment variable DATABASE_URL: CLUSTER=on needs PostgreSQL (the embedded PGlite is one process's)");
  if (!config.NATS_URL) throw new ConfigError("invalid environment variable NATS_URL: CLUSTER=on needs NATS with JetStream (the in-process bus is one process's)");
}

/** This instance's name: INSTANCE_ID, or the host name and the process id. */
export function instanceId(config: Pick<Config, "INSTANCE_ID">): string {
  if (config.INSTANCE_ID) return config.INSTANCE_ID;
  const host = (process.env.HOSTNAME || hostname() || "instance").replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 48);
  return `${host}-${process.pid}`;
}

/** Values copied from examples, which must never guard a production service. */
const PLACEHOLDER_SECRETS = /^(change-?me|changeit|secret|password|default|test|dev|example|token|x+)$/i;
const PRODUCTION_SECRET_MIN = 32;

function requireSecret(name: string, value: string | undefined, why: string): void {
  if (!value) throw new ConfigError(`invalid environment variable ${name}: required ${why}`);
  if (value.length < PRODUCTION_SECRET_MIN || PLACEHOLDER_SECRETS.test(value)) {
    throw new ConfigError(`invalid environment variable ${name}: a default or short value is refused ${why} (use at least ${PRODUCTION_SECRET_MIN} random characters)`);
  }
}

/** In production the service refuses to start with anything that would let a caller pick their identity. */
function checkAuth(config: Config): void {
  const mode = authMode(config);
  if (config.NODE_ENV === "production" && mode === "dev") {
    throw new ConfigError("invalid environment variable AUTH_MODE=\"dev\": X-User-Id identity is not allowed when NODE_ENV=production");
  }
  if (mode === "jwt") {
    if (!config.JWT_SECRET && !config.JWT_JWKS_URL) {
      throw new ConfigError("invalid environment variable JWT_SECRET: JWT_SECRET (HS256) or JWT_JWKS_URL (RS256/ES256) is required when AUTH_MODE=jwt");
    }
    if (config.JWT_SECRET && config.JWT_JWKS_URL) {
      throw new ConfigError("invalid environment variable JWT_JWKS_URL: set JWT_SECRET or JWT_JWKS_URL, not both");
    }
    if (!config.JWT_ISSUER) throw new ConfigError("invalid environment variable JWT_ISSUER: required when AUTH_MODE=jwt");
    if (!config.JWT_AUDIENCE) throw new ConfigError("invalid environment variable JWT_AUDIENCE: required when AUTH_MODE=jwt");
  }
  if (!isProduction(config)) return;
  const why = "in production (AUTH_MODE=jwt or NODE_ENV=production)";
  requireSecret("INTERNAL_SERVICE_TOKEN", config.INTERNAL_SERVICE_TOKEN, why);
  if (config.JWT_SECRET) requireSecret("JWT_SECRET", config.JWT_SECRET, why);
  if (config.MATRIX_HOMESERVER_URL) requireSecret("MATRIX_AS_TOKEN", config.MATRIX_AS_TOKEN, why);
  if (config.MATRIX_EVENTS_MODE === "push") requireSecret("MATRIX_HS_TOKEN", config.MATRIX_HS_TOKEN, why);
}
