import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { requireServices } from "../helpers/services.ts";

/**
 * Runs scripts/fuzz.ts (Schemathesis against /docs/json: no 5xx, documented statuses,
 * content types and response schemas). It needs Python to install Schemathesis; without it
 * the suite skips, except under REQUIRE_SERVICES=1 (CI), where it must run.
 */
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
