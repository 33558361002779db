import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, terminate } from "../helpers/process.ts";

/**
 * Docker is not available on these machines, so the Dockerfile is checked by hand: parsed, its
 * COPYs done into a temporary directory (standing for WORKDIR), its install step run there, and
 * its CMD started with its ENV (plus what production requires) until its HEALTHCHECK passes.
 */
setDefaultTimeout(180_000);

const root = join(import.meta.dir, "..", "..");
type Instruction = { op: string; args: string };

function parseDockerfile(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  const logical = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  for (const line of logical) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line)!;
    if (op!.toUpperCase() === "FROM") stages.push([]);
    stages.at(-1)!.push({ op: op!.toUpperCase(), args: args! });
  }
  return stages;
}
const one = (stage: Instruction[], op: string) => stage.filter((i) => i.op === op);
const execForm = (args: string): string[] => JSON.parse(args);

const stages = parseDockerfile(readFileSync(join(root, "Dockerfile"), "utf8"));
const final = stages.at(-1)!;

describe("Dockerfile", () => {
  test("pins the Bun in use, keeps the data dir in a volume, runs the service directly, checks liveness", () => {
    for (const stage of stages) expect(stage[0]!.args.split(/\s+/)[0]).toBe(`oven/bun:${Bun.version}`);
    const env = Object.fromEntries(one(final, "ENV").flatMap((i) => i.args.split(/\s+/).map((kv) => kv.split("=") as [string, string])));
    expect(env.NODE_ENV).toBe("production");
    expect(execForm(one(final, "VOLUME")[0]!.args)).toEqual([env.DATA_DIR ?? "DATA_DIR unset"]);
    expect(execForm(one(final, "CMD")[0]!.args)).toEqual(["bun", "src/main.ts"]);
    const health = one(final, "HEALTHCHECK")[0]!.args;
    expect(health).toMatch(/--start-period=\d+s/);
    expect(health).toContain("/health");
    const copied = one(final, "COPY").filter((c) => !c.args.startsWith("--from")).map((c) => c.args.split(/\s+/)[0]);
    expect(copied).toEqual(expect.arrayContaining(["src", "migrations", "scripts"]));
    expect(stages.flatMap((s) => one(s, "RUN")).map((r) => r.args)).toContain("bun install --frozen-lockfile --production");
  });
});

describe("the image's steps, run by hand", () => {
  let workdir: string;
  beforeAll(() => {
    workdir = mkdtempSync(join(tmpdir(), "image-"));
  });
  afterAll(() => {
    rmSync(workdir, { recursive: true, force: true });
  });

  test("a production install from the lockfile, then the service answers its healthcheck", async () => {
    const appDir = one(final, "WORKDIR")[0]!.args;
    // Every stage's COPYs from the build context land in the one work dir; `--from` copies are what the install makes.
    for (const stage of stages) {
      for (const copy of one(stage, "COPY").filter((c) => !c.args.startsWith("--from"))) {
        const parts = copy.args.split(/\s+/);
        const dest = parts.pop()!;
        for (const src of parts) cpSync(join(root, src), dest.endsWith("/") ? join(workdir, dest, src) : join(workdir, dest), { recursive: true });
      }
    }
    for (const run of stages.flatMap((s) => one(s, "RUN"))) {
      if (!run.args.startsWith("bun ")) continue; // mkdir/chown: the image's user, not needed here
      const proc = Bun.spawn(["sh", "-c", run.args], { cwd: workdir, stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) console.error(out, err);
      expect(code).toBe(0);
    }
    // Only production dependencies: none of the dev tooling (typescript stays: a peer dependency of elysia).
    expect(existsSync(join(workdir, "node_modules", "elysia"))).toBe(true);
    for (const dev of ["playwright-core", "matrix-js-sdk", "@elysiajs/eden"]) expect(existsSync(join(workdir, "node_modules", dev))).toBe(false);

    const port = String(await freePort());
    const imageEnv = Object.fromEntries(
      one(final, "ENV").flatMap((i) => i.args.split(/\s+/).map((kv) => kv.split("=") as [string, string])).map(([k, v]) => [k, v.replace(appDir, workdir)]),
    );
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? workdir,
      ...imageEnv,
      PORT: port,
      ALLOW_EMBEDDED: "1",
      JWT_SECRET: "image-test-secret-0123456789abcdef0123",
      JWT_ISSUER: "https://id.example",
      JWT_AUDIENCE: "daarion-messaging",
      INTERNAL_SERVICE_TOKEN: "image-test-internal-0123456789abcdef",
    };
    const cmd = execForm(one(final, "CMD")[0]!.args);
    const service = Bun.spawn(cmd, { cwd: workdir, env, stdout: "pipe", stderr: "pipe" });
    try {
      const health = execForm(one(final, "HEALTHCHECK")[0]!.args.replace(/^.*?CMD\s+/, ""));
      const deadline = Date.now() + 60_000;
      let healthy = false;
      while (!healthy && Date.now() < deadline && service.exitCode === null) {
        healthy = (await Bun.spawn(health, { cwd: workdir, env, stdout: "ignore", stderr: "ignore" }).exited) === 0;
        if (!healthy) await Bun.sleep(250); // polling the healthcheck, as Docker does
      }
      if (!healthy) console.error(await new Response(service.stderr).text());
      expect(healthy).toBe(true);
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      expect(res.status).toBe(200);
      expect(existsSync(join(workdir, "data"))).toBe(true);
    } finally {
      await terminate(service);
    }
  });
});
