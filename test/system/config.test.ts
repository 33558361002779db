import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config.ts";
import { terminate } from "../helpers/process.ts";
import { jwtTestEnv } from "../helpers/jwt.ts";
import { answers, otherAddressOfThisMachine, runMainToExit, startMain } from "./main-process.ts";

/** Asserts a refused start-up: exit 1, one stderr line naming `name`, nothing on stdout. */
async function expectRefused(env: Record<string, string>, name: string): Promise<string> {
  const { code, stderr, stdout } = await runMainToExit(env);
  expect(code).toBe(1);
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(name);
  expect(stdout).toBe("");
  return lines[0]!;
}

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("loadConfig accepted the environment");
}

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
      await expectRefused({ [name]: value }, name);
    });
  }
});

describe("cluster mode", () => {
  test("CLUSTER=on without PostgreSQL refuses to start with one line", async () => {
    const line = await expectRefused({ CLUSTER: "on", NATS_URL: "nats://127.0.0.1:4222" }, "DATABASE_URL");
    expect(line).toContain("CLUSTER=on needs PostgreSQL");
  }, 30000);

  test("CLUSTER=on without NATS refuses to start with one line", async () => {
    const line = await expectRefused({ CLUSTER: "on", DATABASE_URL: "postgres://postgres@127.0.0.1:5432/postgres" }, "NATS_URL");
    expect(line).toContain("CLUSTER=on needs NATS");
  }, 30000);

  test("without CLUSTER=on nothing changes; INSTANCE_ID must be usable in a NATS subject", () => {
    expect(loadConfig({}).CLUSTER).toBe("off");
    expect(configError({ CLUSTER: "on", DATABASE_URL: "postgres://h/db", NATS_URL: "nats://h", INSTANCE_ID: "node.1" })).toContain("INSTANCE_ID");
    expect(loadConfig({ CLUSTER: "on", DATABASE_URL: "postgres://h/db", NATS_URL: "nats://h", INSTANCE_ID: "node-1" }).INSTANCE_ID).toBe("node-1");
  });
});

describe("config errors name a secret but never show it", () => {
  for (const [name, value] of [
    ["JWT_SECRET", "too-short-but-still-a-secret"],
    ["MATRIX_AS_TOKEN", "as-sec"],
    ["INTERNAL_SERVICE_TOKEN", "internal-sec"],
    ["DATABASE_URL", "mysql://admin:hunter2-db-password@db.example:3306/app"],
    ["NATS_URL", "http://nats-user:hunter2-nats-password@nats.example"],
    ["MATRIX_HOMESERVER_URL", "ftp://hs:hunter2-hs-password@hs.example"],
  ] as const) {
    test(`${name}`, () => {
      const message = configError({ [name]: value });
      expect(message).toContain(`invalid environment variable ${name}`);
      expect(message).not.toContain(value);
      expect(message).not.toContain("hunter2");
    });
  }

  test("the line a refused start-up prints", async () => {
    const line = await expectRefused({ DATABASE_URL: "mysql://admin:hunter2@db.example/app" }, "DATABASE_URL");
    expect(line).not.toContain("hunter2");
  }, 30000);

  test("values that are not secrets are still shown, to say what was wrong", () => {
    expect(() => loadConfig({ PORT: "seventy" })).toThrow('PORT="seventy"');
  });
});

describe("HOST", () => {
  test("dev mode, which trusts X-User-Id, listens on 127.0.0.1 unless HOST says otherwise", () => {
    expect(loadConfig({}).HOST).toBe("127.0.0.1");
    expect(loadConfig({ AUTH_MODE: "dev" }).HOST).toBe("127.0.0.1");
    expect(loadConfig({ HOST: "0.0.0.0" }).HOST).toBe("0.0.0.0");
  });

  test("jwt mode keeps 0.0.0.0", () => {
    expect(loadConfig(jwtTestEnv()).HOST).toBe("0.0.0.0");
    expect(loadConfig(jwtTestEnv({ HOST: "10.1.2.3" })).HOST).toBe("10.1.2.3");
  });

  test("a dev-mode server does not answer on another address of this machine", async () => {
    const dev = await startMain({ DATA_DIR: ":memory:" });
    try {
      expect(await answers("127.0.0.1", dev.port)).toBe(true);
      expect(await answers(otherAddressOfThisMachine(), dev.port)).toBe(false);
    } finally {
      await terminate(dev.proc);
    }
  }, 60000);
});

describe("NODE_ENV=production without the real services", () => {
  const production = jwtTestEnv({ NODE_ENV: "production", DATA_DIR: ":memory:" });
  const services = { DATABASE_URL: "postgres://127.0.0.1:1/none", MATRIX_HOMESERVER_URL: "http://127.0.0.1:1", MATRIX_AS_TOKEN: "as-token-0123456789abcdefghijklmnopqrstuv", NATS_URL: "nats://127.0.0.1:1" };

  for (const name of ["DATABASE_URL", "MATRIX_HOMESERVER_URL", "NATS_URL"] as const) {
    test(`without ${name}: refused, naming it`, () => {
      const env = { ...production, ...services, [name]: "" };
      expect(() => loadConfig(env)).toThrow(`invalid environment variable ${name}: required when NODE_ENV=production`);
    });
  }

  test("refused with one line naming DATABASE_URL, before anything starts", async () => {
    const line = await expectRefused(production, "DATABASE_URL");
    expect(line).toContain("ALLOW_EMBEDDED=1");
  }, 30000);

  test("AUTH_MODE=jwt alone (a laptop with real tokens) still runs embedded", () => {
    expect(loadConfig(jwtTestEnv()).DATABASE_URL).toBeUndefined();
  });

  test("ALLOW_EMBEDDED=1 runs a single-box production on the stand-ins, on 0.0.0.0", async () => {
    const box = await startMain({ ...production, ALLOW_EMBEDDED: "1" });
    try {
      await box.out.waitFor((l) => l.includes('"database":"pglite"') && l.includes('"matrix":"local"') && l.includes('"events":"memory"'));
      expect(await answers(otherAddressOfThisMachine(), box.port)).toBe(true);
    } finally {
      await terminate(box.proc);
    }
  }, 60000);
});
