import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { requireServices } from "../helpers/services.ts";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";

/**
 * Runs scripts/fuzz.ts (Schemathesis against /docs/json: no 5xx, documented statuses,
 * content types and response schemas). It needs Python to install Schemathesis; without it
 * the suite skips, except under REQUIRE_SERVICES=1 (CI), where it must run.
 */
setDefaultTimeout(30_000);

const root = join(import.meta.dir, "..", "..");
const venvReady = existsSync(join(root, ".fuzz", "venv", "bin", "schemathesis"));
const pythonReady = Bun.which("python3") !== null;
const FUZZ_SECONDS = Number(process.env.FUZZ_MAX_TIME ?? 150);

describe.skipIf(!requireServices && !venvReady && !pythonReady)("schemathesis fuzzing", () => {
  test(
    "finds no server error and no response outside the documented schema",
    async () => {
      const proc = Bun.spawn(["bun", join(root, "scripts", "fuzz.ts")], {
        cwd: root,
        env: { ...process.env, FUZZ_MAX_TIME: String(FUZZ_SECONDS) },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) console.error(out.slice(-20_000), err.slice(-5_000));
      expect(code).toBe(0);
      expect(out).toContain("[fuzz] no failures");
      expect(out).toMatch(/\d+ generated, \d+ passed/);
    },
    (FUZZ_SECONDS + 240) * 1000,
  );
});

/** What the fuzzer found, pinned down without Python. */
describe("fuzzer findings (local backend)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("text with a NUL character is a 400 and creates nothing", async () => {
    const slug = `nul-${Date.now().toString(36)}`;
    const res = await server.api("/api/messaging/channels", { method: "POST", as: "user:alice", json: { slug, name: "a\u0000b", microdao_id: "microdao:daarion" } });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe("VALIDATION_FAILED");
    const list = (await (await server.api("/api/messaging/channels", { as: "user:alice" })).json()) as Array<{ slug: string }>;
    expect(list.some((c) => c.slug === slug)).toBe(false);
  });

  test("a message cursor beyond bigint is a 400, not a 500", async () => {
    const channel = await createChannel(server, "user:alice");
    const res = await server.api(`/api/messaging/channels/${channel.id}/messages?cursor=110614232829979480458155910`, { as: "user:alice" });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe("VALIDATION_FAILED");
  });

  test("/docs/json lists JSON responses only, and the middleware's refusals on every route", async () => {
    const doc = (await (await fetch(`${server.url}/docs/json`)).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
    };
    const pins = doc.paths["/api/messaging/channels/{id}/pins"]!.post!.responses;
    expect(Object.keys(pins)).toEqual(expect.arrayContaining(["400", "401", "409", "422"]));
    const list = doc.paths["/api/messaging/channels"]!.get!.responses;
    expect(Object.keys(list)).toEqual(expect.arrayContaining(["400", "401"]));
    expect(Object.keys(list["200"]!.content!)).toEqual(["application/json"]);
  });
});
