import { describe, expect, test } from "bun:test";
import { groupCommit } from "../../src/store/group-commit.ts";

/** A statement runner that records each merged call and ends only when told to. */
function recordingRunner() {
  const calls: Array<{ jobs: number[]; finish: () => void }> = [];
  let arrived: (() => void) | null = null;
  const runner = (jobs: readonly number[]) =>
    new Promise<number[]>((resolve, reject) => {
      calls.push({
        jobs: [...jobs],
        finish: () => (jobs.includes(-1) ? reject(new Error("refused")) : resolve(jobs.map((j) => j * 10))),
      });
      arrived?.();
    });
  const nextCall = async (index: number) => {
    while (calls.length <= index) await new Promise<void>((resolve) => (arrived = resolve));
    return calls[index]!;
  };
  return { calls, runner, nextCall };
}

describe("group commit", () => {
  test("an idle kind runs a job at once; jobs that come while its statements run go together in the next one", async () => {
    const { calls, runner, nextCall } = recordingRunner();
    const submit = groupCommit(runner, { maxJobs: 100, maxInFlight: 1 });
    const first = submit(1);
    const firstCall = await nextCall(0);
    expect(firstCall.jobs).toEqual([1]);
    const later = [submit(2), submit(3), submit(4)];
    // Nothing more runs while the first statement is in flight.
    await Promise.resolve();
    expect(calls.length).toBe(1);
    firstCall.finish();
    expect(await first).toBe(10);
    const merged = await nextCall(1);
    expect(merged.jobs).toEqual([2, 3, 4]);
    merged.finish();
    expect(await Promise.all(later)).toEqual([20, 30, 40]);
  });

  test("at most maxJobs in one statement; the rest wait for the next", async () => {
    const { runner, nextCall } = recordingRunner();
    const submit = groupCommit(runner, { maxJobs: 2, maxInFlight: 1 });
    const all = [submit(1), submit(2), submit(3)];
    const a = await nextCall(0);
    expect(a.jobs).toEqual([1, 2]);
    a.finish();
    const b = await nextCall(1);
    expect(b.jobs).toEqual([3]);
    b.finish();
    expect(await Promise.all(all)).toEqual([10, 20, 30]);
  });

  test("a merged statement that fails is run again job by job: only the refused job fails", async () => {
    const { runner, nextCall } = recordingRunner();
    const submit = groupCommit(runner, { maxJobs: 100, maxInFlight: 1 });
    const blocker = submit(0);
    (await nextCall(0)).finish();
    await blocker;
    const good = submit(5);
    const bad = submit(-1);
    const alsoGood = submit(6);
    const merged = await nextCall(1);
    expect(merged.jobs).toEqual([5, -1, 6]);
    merged.finish();
    for (let i = 2; i < 5; i++) (await nextCall(i)).finish();
    expect(await good).toBe(50);
    expect(await alsoGood).toBe(60);
    await expect(bad).rejects.toThrow("refused");
  });
});
