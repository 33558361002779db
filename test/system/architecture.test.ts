import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
const MAX_LINES = 500;

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
  cycle?: Array<{ name: string }>;
}

/** Runs dependency-cruiser on src/ with the project's rules (.dependency-cruiser.cjs). */
async function violations(): Promise<string[]> {
  // --bun: dependency-cruiser's command line refuses Node before 22; under Bun it runs anywhere.
  const proc = Bun.spawn([process.execPath, "--bun", "depcruise", "src", "--config", ".dependency-cruiser.cjs", "--output-type", "json"], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (!stdout.startsWith("{")) throw new Error(`depcruise gave no report: ${stderr}`);
  const report = JSON.parse(stdout) as { summary: { violations: Violation[]; totalCruised: number } };
  expect(report.summary.totalCruised).toBeGreaterThan(100);
  return report.summary.violations.map((v) =>
    v.cycle ? `${v.rule.name}: ${[v.from, ...v.cycle.map((step) => step.name)].join(" → ")}` : `${v.rule.name}: ${v.from} → ${v.to}`,
  );
}

describe("architecture of src/", () => {
  test("imports point down the layers, with no cycle (type-only imports included)", async () => {
    expect(await violations()).toEqual([]);
  }, 60_000);

  test(`no source file is over ${MAX_LINES} lines`, async () => {
    const tooLong: string[] = [];
    for await (const path of new Bun.Glob("src/**/*.ts").scan({ cwd: root })) {
      const lines = (await Bun.file(join(root, path)).text()).match(/\n/g)?.length ?? 0;
      if (lines > MAX_LINES) tooLong.push(`${path}: ${lines} lines`);
    }
    expect(tooLong).toEqual([]);
  });
});
