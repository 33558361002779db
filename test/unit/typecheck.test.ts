import { expect, test } from "bun:test";
import { join } from "node:path";

/**
 * `tsc --noEmit` over src, test, bench and scripts (tsconfig.json's include), so the typed client
 * in test/api/eden.test.ts is checked against the app's real types on every `bun test`.
 */
const root = join(import.meta.dir, "..", "..");

test(
  "the project type-checks, tests included",
  async () => {
    const proc = Bun.spawn(["bunx", "tsc", "--noEmit", "-p", "."], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(out + err).toBe("");
    expect(code).toBe(0);
  },
  180_000,
);
