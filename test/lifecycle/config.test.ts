import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";

const MAIN = join(import.meta.dir, "..", "..", "src", "main.ts");

describe("config", () => {
  test("defaults describe the embedded, single-laptop setup", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PORT: 7004, DATA_DIR: "./data", MATRIX_SERVER_NAME: "daarion.city", LOG_LEVEL: "info" });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.NATS_URL).toBeUndefined();
    expect(config.MATRIX_HOMESERVER_URL).toBeUndefined();
  });

  test("empty values count as unset", () => {
    expect(loadConfig({ DATABASE_URL: "", PORT: " " }).PORT).toBe(7004);
  });

  for (const [name, value] of [
    ["PORT", "seventy"],
    ["PORT", "70000"],
    ["DATABASE_URL", "mysql://x"],
    ["NATS_URL", "http://x"],
    ["MATRIX_SERVER_NAME", "bad name"],
    ["LOG_LEVEL", "loud"],
    ["ACTOR_MAILBOX_SIZE", "0"],
  ] as const) {
    test(`${name}=${value} stops start-up with one line naming the variable`, async () => {
      const proc = Bun.spawn(["bun", MAIN], {
        env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp", [name]: value },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [code, stderr, stdout] = await Promise.all([proc.exited, new Response(proc.stderr).text(), new Response(proc.stdout).text()]);
      expect(code).toBe(1);
      const lines = stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(name);
      expect(stdout).toBe("");
    });
  }
});
