import { latency, nowMs, type Latency } from "./stats.ts";

export interface LoadResult {
  ok: number;
  errors: number;
  seconds: number;
  perSecond: number;
  latency: Latency;
  firstError?: string;
}

/**
 * Closed-loop load: `concurrency` workers each issue one request after the other until the
 * duration or the request budget runs out. `request(worker, i)` returns true on success.
 */
export async function closedLoop(
  concurrency: number,
  opts: { seconds: number; maxRequests?: number },
  request: (worker: number, i: number) => Promise<boolean | string>,
): Promise<LoadResult> {
  const samples: number[] = [];
  let errors = 0;
  let issued = 0;
  let firstError: string | undefined;
  const start = nowMs();
  const end = start + opts.seconds * 1000;
  const max = opts.maxRequests ?? Infinity;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (nowMs() < end && issued < max) {
        const i = issued++;
        const t0 = nowMs();
        let outcome: boolean | string;
        try {
          outcome = await request(w, i);
        } catch (err) {
          outcome = String(err);
        }
        if (outcome === true) samples.push(nowMs() - t0);
        else {
          errors++;
          firstError ??= String(outcome);
        }
      }
    }),
  );
  const seconds = (nowMs() - start) / 1000;
  return { ok: samples.length, errors, seconds, perSecond: Math.round(samples.length / seconds), latency: latency(samples), firstError };
}
