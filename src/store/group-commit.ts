import DataLoader from "dataloader";
import type { Sql } from "./db.ts";

export interface GroupCommitOptions {
  /** The most jobs merged into one statement. */
  maxJobs: number;
  /** Statements of this kind at once; a job that comes while they all run waits for the next one. */
  maxInFlight: number;
}

/**
 * One statement of a kind at a time: under load every job that comes while it runs goes in
 * the next one. Measured against two at a time (bench/SUMMARY.md, 2026-12-03): fewer
 * transactions per send in every cell, and more sends/s with 16 senders.
 */
export const GROUP_COMMIT_DEFAULTS: GroupCommitOptions = { maxJobs: 256, maxInFlight: 1 };

/**
 * Group commit: jobs of one kind (several channels' pending rows, say) that come while
 * statements of that kind are running are merged into the next one, so many channels pay one
 * round trip, and an idle service pays no wait at all. `runMerged` answers one result per job,
 * in order, from a single statement: all of it is written, or none. When a merged statement
 * fails, each of its jobs is run alone, so one job's refusal (a constraint, a fence) is its
 * own and the others' writes go through.
 */
export function groupCommit<Job, Result>(
  runMerged: (jobs: readonly Job[]) => Promise<Result[]>,
  opts: GroupCommitOptions = GROUP_COMMIT_DEFAULTS,
): (job: Job) => Promise<Result> {
  // Statements dispatched and not yet ended; a batch that finds none free waits in line.
  let active = 0;
  const waiting: Array<() => void> = [];
  const run = async (jobs: readonly Job[]): Promise<Array<Result | Error>> => {
    try {
      return await runMerged(jobs);
    } catch (err) {
      if (jobs.length === 1) return [asError(err)];
      return await Promise.all(jobs.map((job) => runMerged([job]).then((results) => results[0]!, asError)));
    } finally {
      // The slot passes to the batch that waited longest, which has gathered jobs meanwhile.
      const next = waiting.shift();
      if (next) queueMicrotask(next);
      else active--;
    }
  };
  const loader = new DataLoader<Job, Result>(run, {
    cache: false,
    maxBatchSize: opts.maxJobs,
    // A batch opens with its first job and is dispatched a microtask later (jobs of the same
    // turn join it), or, while `maxInFlight` statements run, when one of them ends.
    batchScheduleFn: (dispatch) => {
      if (active < opts.maxInFlight) {
        active++;
        queueMicrotask(dispatch);
      } else {
        waiting.push(dispatch);
      }
    },
  });
  return (job) => loader.load(job);
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

type MergedStatement<Job, Result> = (sql: Sql, jobs: readonly Job[]) => Promise<Result[]>;

/** Each connection pool's group commits, one per merged statement: made on first use, gone with the pool. */
const poolGroups = new WeakMap<Sql, Map<MergedStatement<never, unknown>, (job: never) => Promise<unknown>>>();

/**
 * Submits `job` to the pool's group commit for `runMerged` (one per pool, so every channel's
 * jobs meet in it). A transaction is not a pool: work inside one is never merged with other work.
 */
export function submitTogether<Job, Result>(sql: Sql, runMerged: MergedStatement<Job, Result>, job: Job): Promise<Result> {
  let groups = poolGroups.get(sql);
  if (!groups) poolGroups.set(sql, (groups = new Map()));
  const key = runMerged as MergedStatement<never, unknown>;
  let group = groups.get(key) as ((job: Job) => Promise<Result>) | undefined;
  if (!group) groups.set(key, (group = groupCommit((jobs: readonly Job[]) => runMerged(sql, jobs))) as (job: never) => Promise<unknown>);
  return group(job);
}
