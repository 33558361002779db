import { knob, knobList } from "./stats.ts";

/**
 * BENCH_SIZE picks the default sizes of every scenario: `quick` (the default) finishes in a few
 * minutes on 2 cores; `full` runs the sizes (send 1/10/100 channels × 1–64 senders,
 * fan-out up to 10,000 subscribers and 100 × 100, 1,000,000 rows, 10,000 idle sockets and
 * channels). Any BENCH_* knob set in the environment still wins over the preset.
 */
export type Preset = "quick" | "full";

export function presetName(env: Record<string, string | undefined> = process.env): Preset {
  const value = (env.BENCH_SIZE ?? "quick").trim().toLowerCase() || "quick";
  if (value !== "quick" && value !== "full") throw new Error(`BENCH_SIZE=${JSON.stringify(env.BENCH_SIZE)}: expected quick or full`);
  return value;
}

export interface BySize<T> {
  quick: T;
  full: T;
}

/** A positive integer knob whose default depends on the preset. */
export const sized = (name: string, defaults: BySize<number>) => knob(name, defaults[presetName()]);

/** A comma-separated list knob whose default depends on the preset. */
export const sizedList = (name: string, defaults: BySize<number[]>) => knobList(name, defaults[presetName()]);

/** What a scenario will run and about how long it takes, known before it starts. */
export interface Plan<P> {
  params: P;
  estimateSeconds: number;
}
