import { describe, expect, test } from "bun:test";
import { backoffAtLeast, backoffCeiling, backoffDelay } from "../../src/backoff.ts";

/** Many draws of the real (Math.random) jitter for one attempt. */
const draws = (n: number, draw: () => number) => Array.from({ length: n }, draw);

describe("retry backoff with equal jitter", () => {
  const outbox = { baseMs: 500, capMs: 30_000 };

  test("the ceiling doubles from the base and stops at the cap", () => {
    expect([0, 1, 2, 3, 6, 7, 50, 2000].map((a) => backoffCeiling(a, outbox))).toEqual([500, 1000, 2000, 4000, 30_000, 30_000, 30_000, 30_000]);
  });

  test("retries of the same attempt are spread out, never immediate, never past the ceiling", () => {
    for (const attempt of [0, 3, 10]) {
      const ceiling = backoffCeiling(attempt, outbox);
      const delays = draws(200, () => backoffDelay(attempt, outbox));
      for (const d of delays) {
        expect(d).toBeGreaterThanOrEqual(ceiling / 2);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
      // Channels that failed together come back at many different instants, not in lockstep.
      expect(new Set(delays).size).toBeGreaterThan(50);
      const spread = Math.max(...delays) - Math.min(...delays);
      expect(spread).toBeGreaterThan(ceiling / 4);
    }
  });

  test("the random source's extremes give exactly the floor and the ceiling", () => {
    expect(backoffDelay(2, outbox, () => 0)).toBe(1000);
    expect(backoffDelay(2, outbox, () => 0.999999)).toBe(2000);
  });

  test("a homeserver's retry_after_ms is a minimum, with jitter on top", () => {
    const synapse = { baseMs: 200, capMs: 4000 };
    const delays = draws(200, () => backoffAtLeast(300, 0, synapse));
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(300);
      expect(d).toBeLessThanOrEqual(300 + 100);
    }
    expect(new Set(delays).size).toBeGreaterThan(20);
    expect(backoffAtLeast(300, 0, synapse, () => 0)).toBe(300);
  });
});
