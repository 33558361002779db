import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { terminate } from "../helpers/process.ts";
import { lockDataDir } from "../../src/lifecycle/data-dir-lock.ts";
import { runMainToExit, startMain } from "./main-process.ts";

describe("one process per embedded DATA_DIR", () => {
  const dir = mkdtempSync(join(tmpdir(), "daarion-lock-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const env = { DATA_DIR: join(dir, "data"), LOG_LEVEL: "info" };

  test("a second process on the same DATA_DIR is refused with one line; after kill -9 of the first, a new one starts", async () => {
    const first = await startMain(env);
    let third: Awaited<ReturnType<typeof startMain>> | null = null;
    try {
      const second = await runMainToExit(env);
      expect(second.code).toBe(1);
      const lines = second.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`DATA_DIR ${env.DATA_DIR} is in use by another daarion-messaging process (pid ${first.proc.pid})`);
      expect(second.stdout).not.toContain("daarion-messaging listening");

      // The first still serves, alone.
      expect((await fetch(`http://127.0.0.1:${first.port}/health`)).status).toBe(200);

      first.proc.kill("SIGKILL");
      await first.proc.exited;
      third = await startMain(env);
      expect((await fetch(`http://127.0.0.1:${third.port}/health`)).status).toBe(200);
    } finally {
      first.proc.kill("SIGKILL");
      if (third) await terminate(third.proc);
    }
  }, 90000);

  // After a container restart the dead holder's pid often belongs to some other live process.
  test.skipIf(!existsSync("/proc/self/stat"))("a lock naming a live process that started at another time is stale, and taken over", () => {
    const lockDir = mkdtempSync(join(dir, "reused-"));
    const lockFile = join(lockDir, "daarion-messaging.lock");
    writeFileSync(lockFile, `${process.ppid} 1`);
    const release = lockDataDir(lockDir);
    expect(readFileSync(lockFile, "utf8")).toStartWith(`${process.pid} `);
    release();
    expect(existsSync(lockFile)).toBe(false);
  });
});
