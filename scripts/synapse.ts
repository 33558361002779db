#!/usr/bin/env bun
/**
 * A local Synapse homeserver for development, tests and CI.
 *
 *   bun run synapse install     create .synapse/venv and pip install matrix-synapse[url-preview]
 *   bun run synapse configure   write homeserver.yaml, appservice.yaml, the signing key and .synapse/env
 *   bun run synapse start       install + configure when needed, start in the background, wait for /health
 *   bun run synapse stop        SIGTERM (then SIGKILL after 15 s) the running homeserver
 *   bun run synapse restart     stop, then start
 *   bun run synapse status      "running" (exit 0) or "stopped" (exit 3)
 *   bun run synapse env         print .synapse/env (KEY=VALUE lines)
 *
 * Load the connection settings into a shell with
 *   set -a; eval "$(bun run --silent synapse env)"; set +a
 *
 * Everything lives in <repo>/.synapse/ (override with SYNAPSE_DIR). Inputs, all optional:
 * MATRIX_SERVER_NAME (default daarion.city), SYNAPSE_PORT (default 8008), MATRIX_AS_URL (default:
 * none, no pushes), MATRIX_AS_TOKEN, MATRIX_HS_TOKEN, MATRIX_AS_SENDER_LOCALPART (default
 * daarion-bot), SYNAPSE_REGISTRATION_SECRET, SYNAPSE_PYTHON (default python3), SYNAPSE_PIP_SPEC
 * (default matrix-synapse[url-preview]: Synapse with what its URL previews need).
 * Generated secrets are kept in .synapse/env and reused; a variable set in the environment wins
 * over the stored value.
 *
 * The functions exported here are pure (no file system, no processes) so tests can import them.
 */
import { createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { BLOCKED_IPV4, BLOCKED_IPV6 } from "../src/domain/fetch-guard.ts";

// ---------------------------------------------------------------------------------------------
// Pure part
// ---------------------------------------------------------------------------------------------

export const DEFAULT_SERVER_NAME = "daarion.city";
export const DEFAULT_PORT = 8008;
export const DEFAULT_SENDER_LOCALPART = "daarion-bot";
export const APPSERVICE_ID = "daarion-messaging";
/** Localpart prefixes the application service owns exclusively. */
export const APPSERVICE_USER_PREFIXES = ["user-", "agent-", "daarion-"] as const;

/** Keys of .synapse/env, in file order. The first six are the public contract. */
export const ENV_KEYS = [
  "MATRIX_HOMESERVER_URL",
  "MATRIX_SERVER_NAME",
  "MATRIX_AS_TOKEN",
  "MATRIX_HS_TOKEN",
  "MATRIX_AS_SENDER_LOCALPART",
  "SYNAPSE_REGISTRATION_SECRET",
  "SYNAPSE_MACAROON_SECRET_KEY",
  "SYNAPSE_FORM_SECRET",
] as const;
export type EnvKey = (typeof ENV_KEYS)[number];

export interface SynapseSettings {
  serverName: string;
  port: number;
  /** Where Synapse pushes transactions; null means no pushes. */
  asUrl: string | null;
  asToken: string;
  hsToken: string;
  senderLocalpart: string;
  registrationSecret: string;
  macaroonSecretKey: string;
  formSecret: string;
}

export interface SynapsePaths {
  dir: string;
  venv: string;
  python: string;
  homeserverYaml: string;
  appserviceYaml: string;
  logConfigYaml: string;
  log: string;
  pid: string;
  env: string;
  db: string;
  mediaStore: string;
  lock: string;
}

export function synapsePaths(dir: string): SynapsePaths {
  const d = resolve(dir);
  return {
    dir: d,
    venv: join(d, "venv"),
    python: join(d, "venv", "bin", "python"),
    homeserverYaml: join(d, "homeserver.yaml"),
    appserviceYaml: join(d, "appservice.yaml"),
    logConfigYaml: join(d, "log.config.yaml"),
    log: join(d, "synapse.log"),
    pid: join(d, "synapse.pid"),
    env: join(d, "env"),
    db: join(d, "homeserver.db"),
    mediaStore: join(d, "media_store"),
    lock: join(d, ".lock"),
  };
}

export function signingKeyPath(dir: string, serverName: string): string {
  return join(resolve(dir), `${serverName}.signing.key`);
}

export class SynapseScriptError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "SynapseScriptError";
  }
}

/** Parses KEY=VALUE lines. Ignores blank lines and # comments; accepts `export ` and quotes. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2] ?? "";
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    out[m[1]!] = value;
  }
  return out;
}

export function homeserverUrl(port: number): string {
  return `http://127.0.0.1:${port}`;
}

export function envFileEntries(s: SynapseSettings): Record<EnvKey, string> {
  return {
    MATRIX_HOMESERVER_URL: homeserverUrl(s.port),
    MATRIX_SERVER_NAME: s.serverName,
    MATRIX_AS_TOKEN: s.asToken,
    MATRIX_HS_TOKEN: s.hsToken,
    MATRIX_AS_SENDER_LOCALPART: s.senderLocalpart,
    SYNAPSE_REGISTRATION_SECRET: s.registrationSecret,
    SYNAPSE_MACAROON_SECRET_KEY: s.macaroonSecretKey,
    SYNAPSE_FORM_SECRET: s.formSecret,
  };
}

/** The .synapse/env text: one KEY=VALUE a line, no quotes (every value is shell-safe). */
export function formatEnvFile(s: SynapseSettings): string {
  const entries = envFileEntries(s);
  return ENV_KEYS.map((k) => `${k}=${entries[k]}`).join("\n") + "\n";
}

/** A 64-hex-character random secret. */
export function randomToken(): string {
  return randomBytes(32).toString("hex");
}

const SHELL_SAFE = /^[A-Za-z0-9._\-+/=:@,]+$/;
const SERVER_NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?::\d{1,5})?$/;
const LOCALPART = /^[a-z0-9._=\-/+]+$/;

type Env = Record<string, string | undefined>;

function pick(env: Env, key: string): string | undefined {
  const v = env[key];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function portFromUrl(url: string | undefined): number | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.port ? Number(u.port) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Settings from the environment (wins), then the persisted .synapse/env, then defaults; missing
 * secrets are generated with `random`.
 */
export function resolveSettings(
  env: Env,
  persisted: Record<string, string>,
  random: () => string = randomToken,
): SynapseSettings {
  const serverName = pick(env, "MATRIX_SERVER_NAME") ?? pick(persisted, "MATRIX_SERVER_NAME") ?? DEFAULT_SERVER_NAME;
  const portText = pick(env, "SYNAPSE_PORT");
  const port = portText !== undefined ? Number(portText) : (portFromUrl(persisted.MATRIX_HOMESERVER_URL) ?? DEFAULT_PORT);
  const secret = (envKey: string, fileKey = envKey) => pick(env, envKey) ?? pick(persisted, fileKey) ?? random();
  const s: SynapseSettings = {
    serverName,
    port,
    asUrl: pick(env, "MATRIX_AS_URL") ?? null,
    asToken: secret("MATRIX_AS_TOKEN"),
    hsToken: secret("MATRIX_HS_TOKEN"),
    senderLocalpart:
      pick(env, "MATRIX_AS_SENDER_LOCALPART") ?? pick(persisted, "MATRIX_AS_SENDER_LOCALPART") ?? DEFAULT_SENDER_LOCALPART,
    registrationSecret: secret("SYNAPSE_REGISTRATION_SECRET"),
    macaroonSecretKey: secret("SYNAPSE_MACAROON_SECRET_KEY"),
    formSecret: secret("SYNAPSE_FORM_SECRET"),
  };
  validateSettings(s);
  return s;
}

export function validateSettings(s: SynapseSettings): void {
  if (!SERVER_NAME.test(s.serverName)) {
    throw new SynapseScriptError(`MATRIX_SERVER_NAME ${JSON.stringify(s.serverName)} is not a valid server name`);
  }
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) {
    throw new SynapseScriptError(`SYNAPSE_PORT must be an integer between 1 and 65535 (got ${s.port})`);
  }
  if (!LOCALPART.test(s.senderLocalpart)) {
    throw new SynapseScriptError(
      `MATRIX_AS_SENDER_LOCALPART ${JSON.stringify(s.senderLocalpart)} must use only a-z 0-9 . _ = - / +`,
    );
  }
  if (s.asUrl !== null && !/^https?:\/\/[^\s]+$/.test(s.asUrl)) {
    throw new SynapseScriptError(`MATRIX_AS_URL must be an http(s) URL (got ${JSON.stringify(s.asUrl)})`);
  }
  const secrets: [string, string][] = [
    ["MATRIX_AS_TOKEN", s.asToken],
    ["MATRIX_HS_TOKEN", s.hsToken],
    ["SYNAPSE_REGISTRATION_SECRET", s.registrationSecret],
    ["SYNAPSE_MACAROON_SECRET_KEY", s.macaroonSecretKey],
    ["SYNAPSE_FORM_SECRET", s.formSecret],
  ];
  for (const [name, value] of secrets) {
    if (!SHELL_SAFE.test(value)) {
      throw new SynapseScriptError(`${name} may only contain A-Z a-z 0-9 . _ - + / = : @ , (it is written unquoted to .synapse/env)`);
    }
  }
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const LIMIT = { per_second: 1000, burst_count: 1000 };

/** Rate limits raised the way Complement's Synapse config raises them (key names from Synapse's config/ratelimiting.py). */
export function raisedRateLimits(): Record<string, unknown> {
  const l = () => ({ ...LIMIT });
  return {
    rc_message: l(),
    rc_registration: l(),
    rc_login: { address: l(), account: l(), failed_attempts: l() },
    rc_joins: { local: l(), remote: l() },
    rc_joins_per_room: l(),
    rc_invites: { per_room: l(), per_user: l(), per_issuer: l() },
    rc_third_party_invite: l(),
    rc_room_creation: l(),
    rc_3pid_validation: l(),
    rc_admin_redaction: l(),
    rc_key_requests: l(),
    rc_presence: { per_user: l() },
    rc_delayed_event_mgmt: l(),
    rc_reports: l(),
    rc_media_create: l(),
    rc_profile: l(),
    rc_user_directory: l(),
  };
}

export function homeserverConfig(s: SynapseSettings, p: SynapsePaths): Record<string, unknown> {
  return {
    server_name: s.serverName,
    public_baseurl: `${homeserverUrl(s.port)}/`,
    listeners: [
      {
        port: s.port,
        bind_addresses: ["127.0.0.1"],
        type: "http",
        tls: false,
        x_forwarded: false,
        resources: [{ names: ["client"], compress: false }],
      },
    ],
    database: { name: "sqlite3", args: { database: p.db } },
    log_config: p.logConfigYaml,
    media_store_path: p.mediaStore,
    signing_key_path: signingKeyPath(p.dir, s.serverName),
    max_upload_size: "50M",
    report_stats: false,
    enable_registration: false,
    registration_shared_secret: s.registrationSecret,
    macaroon_secret_key: s.macaroonSecretKey,
    form_secret: s.formSecret,
    bcrypt_rounds: 4,
    suppress_key_server_warning: true,
    trusted_key_servers: [],
    federation_domain_whitelist: [],
    // Synapse reads sync_response_cache_duration from the `caches` section.
    caches: { sync_response_cache_duration: 0 },
    presence: { enabled: false },
    // Link previews (README "Link previews"): Synapse's preview_url, kept out of private networks
    // by the same ranges as the service's own fetcher; 127.0.0.1 is let through for the test
    // suites' page servers (a development homeserver on a laptop, never a production one).
    url_preview_enabled: true,
    url_preview_ip_range_blacklist: URL_PREVIEW_BLOCKED_RANGES,
    url_preview_ip_range_whitelist: URL_PREVIEW_ALLOWED_RANGES,
    max_spider_size: "1M",
    url_preview_accept_language: ["en"],
    enable_metrics: false,
    app_service_config_files: [p.appserviceYaml],
    // VoIP: Synapse hands out TURN REST credentials on GET /voip/turnServer (it computes them
    // from the secret; no TURN server runs here, the URIs only have to be handed over).
    turn_uris: SYNAPSE_TURN_URIS,
    turn_shared_secret: turnSharedSecret(s.registrationSecret),
    turn_user_lifetime: `${SYNAPSE_TURN_TTL_S}s`,
    turn_allow_guests: false,
    ...raisedRateLimits(),
  };
}

/** url_preview_ip_range_blacklist: the ranges src/domain/fetch-guard.ts blocks. */
export const URL_PREVIEW_BLOCKED_RANGES = [...BLOCKED_IPV4, ...BLOCKED_IPV6].map(([address, prefix]) => `${address}/${prefix}`);
/** url_preview_ip_range_whitelist: the test suites' page servers listen on 127.0.0.1. */
export const URL_PREVIEW_ALLOWED_RANGES = ["127.0.0.1"];

/** The TURN URIs the development Synapse hands out (nothing listens there: media never passes through this project). */
export const SYNAPSE_TURN_URIS = ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"];
export const SYNAPSE_TURN_TTL_S = 86400;

/** The TURN shared secret of the development Synapse, derived from its registration secret (so .synapse/env needs no new key). */
export function turnSharedSecret(registrationSecret: string): string {
  return createHmac("sha256", registrationSecret).update("daarion-turn-shared-secret").digest("hex");
}

export function appserviceRegistration(s: SynapseSettings): Record<string, unknown> {
  const server = escapeRegex(s.serverName);
  return {
    id: APPSERVICE_ID,
    url: s.asUrl,
    as_token: s.asToken,
    hs_token: s.hsToken,
    sender_localpart: s.senderLocalpart,
    rate_limited: false,
    // Typing and receipts reach push mode too (MSC2409's `ephemeral` in each transaction).
    receive_ephemeral: true,
    namespaces: {
      users: APPSERVICE_USER_PREFIXES.map((prefix) => ({ exclusive: true, regex: `@${escapeRegex(prefix)}.*:${server}` })),
      aliases: [{ exclusive: false, regex: `#.*:${server}` }],
      rooms: [],
    },
  };
}

export function logConfig(logFile: string): Record<string, unknown> {
  return {
    version: 1,
    formatters: {
      precise: { format: "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s" },
    },
    handlers: {
      file: { class: "logging.FileHandler", formatter: "precise", filename: logFile, encoding: "utf8" },
    },
    loggers: {
      "synapse.storage.SQL": { level: "WARNING" },
      "twisted": { level: "WARNING" },
    },
    root: { level: "INFO", handlers: ["file"] },
    disable_existing_loggers: false,
  };
}

function isCollection(v: unknown): v is Record<string, unknown> | unknown[] {
  return typeof v === "object" && v !== null;
}

function isEmptyCollection(v: Record<string, unknown> | unknown[]): boolean {
  return Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0;
}

function yamlScalar(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`cannot write ${v} to YAML`);
    return String(v);
  }
  // A JSON string is a valid YAML double-quoted scalar; quoting every string keeps PyYAML's
  // YAML 1.1 rules (yes/no/on/off, 0o…, …) from reinterpreting values.
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v) && v.length === 0) return "[]";
  if (isCollection(v) && isEmptyCollection(v)) return "{}";
  throw new Error(`cannot write ${typeof v} as a YAML scalar`);
}

function yamlKey(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.\-]*$/.test(k) ? k : JSON.stringify(k);
}

function yamlLines(v: unknown, indent: number): string[] {
  const pad = " ".repeat(indent);
  if (!isCollection(v) || isEmptyCollection(v)) return [pad + yamlScalar(v)];
  const lines: string[] = [];
  if (Array.isArray(v)) {
    for (const item of v) {
      if (isCollection(item) && !isEmptyCollection(item)) {
        const inner = yamlLines(item, indent + 2);
        lines.push(`${pad}- ${inner[0]!.slice(indent + 2)}`, ...inner.slice(1));
      } else {
        lines.push(`${pad}- ${yamlScalar(item)}`);
      }
    }
    return lines;
  }
  for (const [k, val] of Object.entries(v)) {
    if (isCollection(val) && !isEmptyCollection(val)) {
      lines.push(`${pad}${yamlKey(k)}:`, ...yamlLines(val, indent + 2));
    } else {
      lines.push(`${pad}${yamlKey(k)}: ${yamlScalar(val)}`);
    }
  }
  return lines;
}

/** A small block-style YAML writer for plain data (objects, arrays, strings, numbers, booleans, null). */
export function toYaml(value: unknown, header?: string): string {
  const head = header ? header.split("\n").map((l) => `# ${l}`.trimEnd()).join("\n") + "\n" : "";
  return head + yamlLines(value, 0).join("\n") + "\n";
}

/** A Synapse signing key line: `ed25519 <key id> <unpadded base64 seed>`. */
export function signingKeyLine(keyId: string, seed: Uint8Array): string {
  if (seed.length !== 32) throw new Error("an ed25519 seed is 32 bytes");
  return `ed25519 ${keyId} ${Buffer.from(seed).toString("base64").replace(/=+$/, "")}\n`;
}

/** The HMAC-SHA1 (hex) for POST /_synapse/admin/v1/register (shared-secret registration). */
export function sharedSecretRegistrationMac(
  secret: string,
  nonce: string,
  username: string,
  password: string,
  admin = false,
): string {
  const h = createHmac("sha1", secret);
  h.update(nonce);
  h.update("\0");
  h.update(username);
  h.update("\0");
  h.update(password);
  h.update("\0");
  h.update(admin ? "admin" : "notadmin");
  return h.digest("hex");
}

// ---------------------------------------------------------------------------------------------
// Side effects
// ---------------------------------------------------------------------------------------------

const REPO_ROOT = resolve(import.meta.dir, "..");

export function defaultSynapseDir(env: Env = process.env): string {
  const override = pick(env, "SYNAPSE_DIR");
  return override ? resolve(process.cwd(), override) : join(REPO_ROOT, ".synapse");
}

function say(msg: string): void {
  console.log(`[synapse] ${msg}`);
}

function warn(msg: string): void {
  console.error(`[synapse] warning: ${msg}`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Writes only when the content differs; returns whether it wrote. */
function writeIfChanged(path: string, content: string, mode = 0o644): boolean {
  if (readText(path) === content) return false;
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return true;
}

function run(cmd: string[], opts: { cwd?: string } = {}): { ok: boolean; out: string } {
  const r = Bun.spawnSync(cmd, { cwd: opts.cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: process.env });
  return { ok: r.exitCode === 0, out: (r.stdout?.toString() ?? "") + (r.stderr?.toString() ?? "") };
}

function tail(text: string, n: number): string {
  const lines = text.replace(/\n+$/, "").split("\n");
  return lines.slice(-n).join("\n");
}

/** A lock file so that two runs (say, parallel CI steps) do not install or start twice. */
async function withLock<T>(p: SynapsePaths, fn: () => Promise<T>): Promise<T> {
  mkdirSync(p.dir, { recursive: true });
  const deadline = Date.now() + 300_000;
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(p.lock, "wx");
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = Number(readText(p.lock)?.trim());
      if (!Number.isInteger(holder) || holder <= 0 || !isAlive(holder)) {
        rmSync(p.lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new SynapseScriptError(`timed out waiting for ${p.lock} (held by pid ${holder})`);
      if (!announced) {
        say(`waiting for another run of this script (pid ${holder}) to finish`);
        announced = true;
      }
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    if (readText(p.lock)?.trim() === String(process.pid)) rmSync(p.lock, { force: true });
  }
}

// -- install ----------------------------------------------------------------------------------

function synapseVersion(p: SynapsePaths): string | undefined {
  if (!existsSync(p.python)) return undefined;
  const r = run([p.python, "-c", "import synapse; print(synapse.__version__)"]);
  return r.ok ? r.out.trim().split("\n").pop() : undefined;
}

/**
 * True when the venv has what Synapse's URL previews need, asked of Synapse itself (the check
 * it runs at start-up with url_preview_enabled): its url-preview extra, lxml in older releases,
 * beautifulsoup4 in newer ones.
 */
function hasUrlPreviewDeps(p: SynapsePaths): boolean {
  return run([p.python, "-c", "from synapse.util.check_dependencies import check_requirements; check_requirements('url-preview')"]).ok;
}

export async function install(p: SynapsePaths): Promise<void> {
  const have = synapseVersion(p);
  if (have && hasUrlPreviewDeps(p)) {
    say(`matrix-synapse ${have} is installed in ${p.venv}`);
    return;
  }
  if (have) {
    // A venv made before previews were on: the same Synapse, with its url-preview extra.
    const installed = run([p.python, "-c", "import importlib.metadata as m; print(m.version('matrix-synapse'))"]);
    const version = installed.ok ? installed.out.trim().split("\n").pop()! : have.split(" ")[0]!;
    const extra = `matrix-synapse[url-preview]==${version}`;
    say(`matrix-synapse ${have} lacks what URL previews need; pip install ${extra}`);
    const r = run([p.python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", extra]);
    if (!r.ok || !hasUrlPreviewDeps(p)) throw new SynapseScriptError(`pip install ${extra} failed:\n${tail(r.out, 60)}`);
    say(`added the url-preview extra to matrix-synapse ${have} in ${p.venv}`);
    return;
  }
  mkdirSync(p.dir, { recursive: true });
  if (existsSync(p.python) && !run([p.python, "-c", "pass"]).ok) {
    say(`the virtualenv in ${p.venv} is broken; recreating it`);
    rmSync(p.venv, { recursive: true, force: true });
  }
  if (!existsSync(p.python)) {
    const python = pick(process.env, "SYNAPSE_PYTHON") ?? "python3";
    if (!Bun.which(python)) {
      throw new SynapseScriptError(`${python} not found on PATH (Synapse needs Python 3.10+; set SYNAPSE_PYTHON to another interpreter)`);
    }
    say(`creating a virtualenv with ${python} in ${p.venv}`);
    const r = run([python, "-m", "venv", p.venv]);
    if (!r.ok) throw new SynapseScriptError(`${python} -m venv ${p.venv} failed:\n${tail(r.out, 40)}`);
  }
  const spec = pick(process.env, "SYNAPSE_PIP_SPEC") ?? "matrix-synapse[url-preview]";
  say(`pip install ${spec} (takes about a minute)`);
  const started = Date.now();
  const r = run([p.python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", spec]);
  if (!r.ok) throw new SynapseScriptError(`pip install ${spec} failed:\n${tail(r.out, 60)}`);
  const version = synapseVersion(p);
  if (!version) throw new SynapseScriptError(`pip install ${spec} finished but "import synapse" still fails in ${p.venv}`);
  if (!hasUrlPreviewDeps(p)) throw new SynapseScriptError(`pip install ${spec} finished but Synapse's url-preview requirements are missing in ${p.venv} (install matrix-synapse[url-preview])`);
  say(`installed matrix-synapse ${version} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

// -- configure --------------------------------------------------------------------------------

function generateSigningKeyLine(): string {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  if (!jwk.d) throw new Error("could not export the ed25519 private key");
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const keyId = "a_" + Array.from(randomBytes(4), (b) => alphabet[b % alphabet.length]).join("");
  return signingKeyLine(keyId, Buffer.from(jwk.d, "base64url"));
}

export function readPersistedEnv(p: SynapsePaths): Record<string, string> {
  const text = readText(p.env);
  return text === undefined ? {} : parseEnvFile(text);
}

export async function configure(p: SynapsePaths, env: Env = process.env): Promise<{ settings: SynapseSettings; changed: boolean }> {
  mkdirSync(p.dir, { recursive: true });
  mkdirSync(p.mediaStore, { recursive: true });
  const persisted = readPersistedEnv(p);
  const s = resolveSettings(env, persisted);

  const before = persisted.MATRIX_SERVER_NAME;
  if (before && before !== s.serverName && existsSync(p.db)) {
    throw new SynapseScriptError(
      `MATRIX_SERVER_NAME is ${s.serverName} but ${p.db} belongs to ${before}; Synapse cannot rename a server.\n` +
        `  Use MATRIX_SERVER_NAME=${before}, or stop Synapse and delete ${p.db} and ${p.mediaStore} to start over.`,
    );
  }

  const header = "Generated by scripts/synapse.ts (bun run synapse configure). Edits are overwritten.";
  let changed = false;
  const wrote = (name: string, did: boolean) => {
    if (did) {
      say(`wrote ${name}`);
      changed = true;
    }
  };
  const keyPath = signingKeyPath(p.dir, s.serverName);
  if (!existsSync(keyPath)) {
    writeFileSync(keyPath, generateSigningKeyLine(), { mode: 0o600 });
    wrote(keyPath, true);
  }
  wrote(p.logConfigYaml, writeIfChanged(p.logConfigYaml, toYaml(logConfig(p.log), header)));
  wrote(p.appserviceYaml, writeIfChanged(p.appserviceYaml, toYaml(appserviceRegistration(s), header), 0o600));
  wrote(p.homeserverYaml, writeIfChanged(p.homeserverYaml, toYaml(homeserverConfig(s, p), header), 0o600));
  wrote(p.env, writeIfChanged(p.env, formatEnvFile(s), 0o600));
  if (!changed) say(`configuration in ${p.dir} is up to date`);
  return { settings: s, changed };
}

// -- processes --------------------------------------------------------------------------------

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // A zombie answers kill(0) but is gone.
  const stat = readText(`/proc/${pid}/stat`);
  if (stat !== undefined) return !/^\d+ \(.*\) Z/.test(stat);
  const r = run(["ps", "-p", String(pid), "-o", "stat="]);
  return !(r.ok && r.out.trim().startsWith("Z"));
}

function commandLine(pid: number): string | undefined {
  const proc = readText(`/proc/${pid}/cmdline`);
  if (proc !== undefined) return proc.split("\0").join(" ");
  const r = run(["ps", "-p", String(pid), "-o", "command="]);
  return r.ok ? r.out.trim() : undefined;
}

/** The pid from synapse.pid if that process is alive and is our homeserver (guards against pid reuse). */
function runningPid(p: SynapsePaths): number | undefined {
  const pid = Number(readText(p.pid)?.trim());
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  const cmd = commandLine(pid);
  if (cmd !== undefined && !(cmd.includes("synapse.app.homeserver") && cmd.includes(p.homeserverYaml))) return undefined;
  return pid;
}

async function healthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`${homeserverUrl(port)}/health`, { signal: AbortSignal.timeout(2000) });
    await res.text();
    return res.status === 200;
  } catch {
    return false;
  }
}

function currentPort(p: SynapsePaths): number {
  try {
    return resolveSettings(process.env, readPersistedEnv(p), () => "x").port;
  } catch {
    return DEFAULT_PORT;
  }
}

function printUsage(p: SynapsePaths): void {
  say(`env file: ${p.env}`);
  say(`load it:  set -a; eval "$(bun run --silent synapse env)"; set +a`);
}

async function waitForHealth(port: number, timeoutMs: number, stillRunning: () => boolean): Promise<"up" | "died" | "timeout"> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await healthy(port)) return "up";
    if (!stillRunning()) return "died";
    await sleep(250);
  }
  return "timeout";
}

function logTail(p: SynapsePaths, n = 40): string {
  const text = readText(p.log);
  return text === undefined ? "(no log file)" : tail(text, n);
}

export async function start(p: SynapsePaths): Promise<void> {
  await install(p);
  const { settings, changed } = await configure(p);
  const port = settings.port;
  const url = homeserverUrl(port);

  const pid = runningPid(p);
  if (pid !== undefined) {
    if (changed) warn(`the configuration changed while Synapse (pid ${pid}) runs; restart it to apply: bun run synapse restart`);
    const state = (await healthy(port)) ? "up" : await waitForHealth(port, 90_000, () => isAlive(pid));
    if (state === "up") {
      say(`Synapse is already running at ${url} (pid ${pid})`);
      printUsage(p);
      return;
    }
    throw new SynapseScriptError(`Synapse (pid ${pid}) runs but ${url}/health does not answer. Last lines of ${p.log}:\n${logTail(p)}`);
  }
  rmSync(p.pid, { force: true });
  if (await healthy(port)) {
    throw new SynapseScriptError(
      `something else already answers on ${url}/health (no Synapse started from ${p.dir} is running). ` +
        `Stop it, or use another port with SYNAPSE_PORT.`,
    );
  }

  say(`starting Synapse ${synapseVersion(p) ?? ""} for ${settings.serverName} on ${url}`.replace("  ", " "));
  writeFileSync(p.log, `\n---- ${new Date().toISOString()} bun run synapse start ----\n`, { flag: "a" });
  const logFd = openSync(p.log, "a");
  let child: ReturnType<typeof Bun.spawn>;
  try {
    child = Bun.spawn([p.python, "-m", "synapse.app.homeserver", "--config-path", p.homeserverYaml], {
      cwd: p.dir,
      stdio: ["ignore", logFd, logFd],
      env: { ...process.env, PYTHONUNBUFFERED: "1" },
      detached: true, // own session: survives this script and the terminal
    });
  } finally {
    closeSync(logFd);
  }
  child.unref();
  writeFileSync(p.pid, `${child.pid}\n`);

  const state = await waitForHealth(port, 90_000, () => child.exitCode === null && child.signalCode === null && isAlive(child.pid));
  if (state !== "up") {
    const why = state === "died" ? `Synapse exited (code ${child.exitCode ?? child.signalCode})` : `Synapse did not answer ${url}/health within 90 s`;
    if (state === "timeout") {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {}
    }
    rmSync(p.pid, { force: true });
    throw new SynapseScriptError(`${why}. Last 40 lines of ${p.log}:\n${logTail(p)}`);
  }
  say(`Synapse is up at ${url} (pid ${child.pid}, log ${p.log})`);
  printUsage(p);
}

export async function stop(p: SynapsePaths): Promise<void> {
  const pid = runningPid(p);
  if (pid === undefined) {
    rmSync(p.pid, { force: true });
    say("Synapse is not running");
    return;
  }
  say(`stopping Synapse (pid ${pid})`);
  process.kill(pid, "SIGTERM");
  const gone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (!isAlive(pid)) return true;
      await sleep(100);
    }
    return !isAlive(pid);
  };
  if (!(await gone(15_000))) {
    warn(`pid ${pid} did not exit within 15 s of SIGTERM; sending SIGKILL`);
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
    if (!(await gone(5_000))) throw new SynapseScriptError(`pid ${pid} survived SIGKILL`);
  }
  rmSync(p.pid, { force: true });
  say("stopped");
}

async function status(p: SynapsePaths): Promise<number> {
  const pid = runningPid(p);
  const port = currentPort(p);
  if (pid === undefined) {
    say(`stopped (${p.dir})`);
    return 3;
  }
  const ok = await healthy(port);
  say(`running (pid ${pid}) at ${homeserverUrl(port)}, /health ${ok ? "OK" : "not answering"}`);
  return 0;
}

function printEnv(p: SynapsePaths): void {
  const text = readText(p.env);
  if (text === undefined) {
    throw new SynapseScriptError(`${p.env} does not exist yet; run: bun run synapse configure (or start)`);
  }
  process.stdout.write(text);
}

const USAGE = `usage: bun run synapse <install|configure|start|stop|restart|status|env>
  install    create ${"<dir>"}/venv and pip install matrix-synapse[url-preview] (skipped when Synapse and its url-preview requirements are there)
  configure  write homeserver.yaml, appservice.yaml, the signing key and the env file
  start      install + configure, start Synapse in the background, wait for /health (90 s)
  stop       stop the Synapse started by start (SIGTERM, SIGKILL after 15 s)
  restart    stop, then start
  status     print running/stopped (exit 0/3)
  env        print the env file: set -a; eval "$(bun run --silent synapse env)"; set +a
<dir> is <repo>/.synapse, or SYNAPSE_DIR.`;

export async function main(argv: string[]): Promise<number> {
  const command = argv[0];
  const p = synapsePaths(defaultSynapseDir());
  switch (command) {
    case "install":
      await withLock(p, () => install(p));
      return 0;
    case "configure":
      await withLock(p, () => configure(p));
      return 0;
    case "start":
      await withLock(p, () => start(p));
      return 0;
    case "stop":
      await withLock(p, () => stop(p));
      return 0;
    case "restart":
      await withLock(p, async () => {
        await stop(p);
        await start(p);
      });
      return 0;
    case "status":
      return status(p);
    case "env":
      printEnv(p);
      return 0;
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return 0;
    default:
      console.error(command ? `[synapse] unknown command: ${command}\n${USAGE}` : USAGE);
      return 2;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      if (e instanceof SynapseScriptError) {
        console.error(`[synapse] error: ${e.message}`);
        process.exit(e.exitCode);
      }
      console.error("[synapse] unexpected error:", e);
      process.exit(1);
    },
  );
}
