/**
 * Fuzzes the HTTP API with Schemathesis (from PyPI) against /docs/json: no 5xx, and every
 * response must match its documented status and schema. Installs Schemathesis into
 * .fuzz/venv when missing, starts the service on a free port (embedded PGlite, or a fresh
 * database on DATABASE_URL's server), seeds a channel with a message, runs the fuzzer within
 * a bounded time, stops the service and exits non-zero on any failure.
 *
 *   bun scripts/fuzz.ts            FUZZ_MAX_EXAMPLES (default 25), FUZZ_MAX_TIME seconds (default 240)
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createChannel, startTestServer } from "../test/helpers/server.ts";

const root = join(import.meta.dir, "..");
const venv = join(root, ".fuzz", "venv");
const schemathesis = join(venv, "bin", "schemathesis");
const FUZZER = "user:fuzzer";

async function run(cmd: string[], env: Record<string, string> = {}, cwd = root): Promise<number> {
  const proc = Bun.spawn(cmd, { cwd, env: { ...process.env, ...env }, stdout: "inherit", stderr: "inherit" });
  return await proc.exited;
}

async function ensureSchemathesis(): Promise<void> {
  if (existsSync(schemathesis)) return;
  console.log("[fuzz] installing schemathesis into .fuzz/venv");
  if ((await run(["python3", "-m", "venv", venv])) !== 0) throw new Error("python3 -m venv failed");
  if ((await run([join(venv, "bin", "pip"), "install", "--quiet", "schemathesis"])) !== 0) throw new Error("pip install schemathesis failed");
}

async function main(): Promise<number> {
  await ensureSchemathesis();
  // TURN configured, so GET /voip/turn answers credentials (without it, 503 TURN_UNAVAILABLE, a server-side condition).
  const server = await startTestServer({
    LOG_LEVEL: process.env.FUZZ_LOG_LEVEL ?? "silent",
    TURN_URIS: "turn:127.0.0.1:3478?transport=udp",
    TURN_SHARED_SECRET: "fuzz-turn-shared-secret",
  });
  try {
    const channel = await createChannel(server, FUZZER, { visibility: "public" });
    const archivable = await createChannel(server, FUZZER, { visibility: "public" });
    const seed = async (path: string, init: RequestInit & { json?: unknown }) => {
      const res = await server.api(`/api/messaging/channels/${channel.id}${path}`, { method: "POST", as: FUZZER, ...init });
      if (res.status !== 201) throw new Error(`seeding ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as { id: string };
    };
    const message = await seed("/messages", { json: { text: "seeded for the fuzzer" } });
    const doomed = await seed("/messages", { json: { text: "the fuzzer deletes this one" } });
    const form = new FormData();
    form.append("file", new File(["seeded file"], "seed.txt", { type: "text/plain" }));
    const file = await seed("/files", { body: form });
    const invited = await server.api(`/api/messaging/channels/${channel.id}/members`, {
      method: "POST",
      as: FUZZER,
      json: { member_id: "agent:fuzzbot" },
    });
    if (invited.status !== 201) throw new Error(`seeding an agent: ${invited.status} ${await invited.text()}`);

    console.log(`[fuzz] service at ${server.url}, channel ${channel.id}, message ${message.id}`);
    return await run(
      [
        schemathesis,
        "--config-file",
        join(root, "scripts", "fuzz.toml"),
        "run",
        `${server.url}/docs/json`,
        "--url",
        server.url,
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        process.env.FUZZ_MAX_EXAMPLES ?? "25",
        "--max-time",
        process.env.FUZZ_MAX_TIME ?? "240",
        // One worker: Python 3.11's ast is not thread-safe under Schemathesis' coverage phase
        // ("AST constructor recursion depth mismatch"), which made parallel runs flaky.
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        // The Matrix application-service API answers the homeserver in Matrix's error format.
        "--exclude-path-regex",
        "^/_matrix/",
      ],
      {
        FUZZ_CHANNEL_ID: channel.id,
        FUZZ_ARCHIVE_CHANNEL_ID: archivable.id,
        FUZZ_USER_ID: FUZZER,
        FUZZ_MESSAGE_ID: message.id,
        FUZZ_DOOMED_MESSAGE_ID: doomed.id,
        FUZZ_FILE_MESSAGE_ID: file.id,
        FUZZ_MEMBER_ID: "agent:fuzzbot",
        FUZZ_AGENT_ID: "agent:fuzzbot",
      },
      // Schemathesis keeps its cache and reports in its working directory: keep them in .fuzz.
      join(root, ".fuzz"),
    );
  } finally {
    await server.stop();
  }
}

const code = await main().catch((err) => {
  console.error(`[fuzz] ${err instanceof Error ? err.message : String(err)}`);
  return 2;
});
console.log(code === 0 ? "[fuzz] no failures" : `[fuzz] failed (exit ${code})`);
process.exit(code);
