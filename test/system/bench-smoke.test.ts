import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serviceMissing } from "../helpers/services.ts";

// Not a timed test: it proves the bench harness runs end to end (service subprocess, baseline,
// load, results file, summary) with tiny numbers, in bounded time. The figures are not checked.
describe.skipIf(serviceMissing("DATABASE_URL"))("bench harness", () => {
  test("the send scenario runs service and baseline and writes results and a summary", async () => {
    const out = mkdtempSync(join(tmpdir(), "bench-smoke-"));
    try {
      const proc = Bun.spawn(["bun", "bench/run.ts", "send"], {
        cwd: join(import.meta.dir, "../.."),
        env: {
          ...process.env,
          BENCH_OUT_DIR: out,
          BENCH_SIZE: "quick",
          BENCH_SEND_CHANNELS: "1",
          BENCH_SEND_CONCURRENCY: "2",
          BENCH_SEND_SECONDS: "0.3",
          BENCH_ROUNDS: "1",
          BENCH_SEND_LIMITS_CHANNELS: "1",
          BENCH_SEND_LIMITS_CONCURRENCY: "2",
          BENCH_SEND_LIMITS_SECONDS: "0.3",
          BENCH_SEND_LIMITS_ROUNDS: "1",
        },
        stdout: "pipe",
        stderr: "pipe",
      });
      const killer = setTimeout(() => proc.kill("SIGKILL"), 28_000);
      const code = await proc.exited;
      clearTimeout(killer);
      expect({ code, stderr: code === 0 ? "" : await new Response(proc.stderr).text() }).toEqual({ code: 0, stderr: "" });

      const files = readdirSync(out);
      const resultFile = files.find((f) => f.endsWith("-send.json"));
      expect(resultFile).toBeDefined();
      const result = JSON.parse(readFileSync(join(out, resultFile!), "utf8"));
      expect(result.host.loader).toBe("same machine");
      expect(result.preset).toBe("quick");
      expect(result.rows).toHaveLength(1);
      const [row] = result.rows;
      expect(row.service.ok).toBeGreaterThan(0);
      expect(row.baseline.ok).toBeGreaterThan(0);
      expect(row.service.errors).toBe(0);
      expect(row.ratio).toBeGreaterThan(0);
      // The limiter's cost: limits on (never reached) against off, every send admitted.
      expect(result.limits.rows).toHaveLength(1);
      expect(result.limits.rows[0].on.ok).toBeGreaterThan(0);
      expect(result.limits.rows[0].on.errors).toBe(0);
      expect(result.limits.rows[0].ratio).toBeGreaterThan(0);
      const summary = readFileSync(join(out, files.find((f) => f.endsWith("-summary.md"))!), "utf8");
      expect(summary).toContain("same machine");
      expect(summary).toContain("| 1 | 2 |");
      expect(summary).toContain("What the default rate limiter costs");
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 30_000);
});

// The cluster scenario needs NATS and four instances, so it is explicit only: `--plan` names it
// with its estimate, and `all` leaves it out and says so.
describe("bench plan", () => {
  const plan = (...args: string[]) => {
    const proc = Bun.spawnSync(["bun", "bench/run.ts", ...args, "--plan"], { cwd: join(import.meta.dir, "../.."), env: { ...process.env, BENCH_SIZE: "quick" }, timeout: 20_000 });
    return { code: proc.exitCode, out: proc.stdout.toString() };
  };
  test("cluster --plan prints its estimate; all --plan leaves cluster out", () => {
    const cluster = plan("cluster");
    expect(cluster.code).toBe(0);
    expect(cluster.out).toMatch(/BENCH_SIZE=quick: cluster ~\d/);
    const all = plan();
    expect(all.code).toBe(0);
    expect(all.out).toContain("cluster is not part of all");
    expect(all.out).not.toMatch(/: [^\n]*cluster ~/);
  }, 30_000);
});
