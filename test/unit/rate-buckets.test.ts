import { describe, expect, test } from "bun:test";
import { TokenBuckets } from "../../src/http/rate-buckets.ts";

/** Buckets on a clock the test moves. */
function clocked() {
  let now = 1_000;
  const buckets = new TokenBuckets(() => now);
  return { buckets, advance: (ms: number) => (now += ms) };
}
const allowed = (states: { allowed: boolean }[]) => states.map((s) => s.allowed);

describe("in-memory token buckets", () => {
  test("all or nothing: a request refused by one bucket takes nothing from the others", () => {
    const { buckets } = clocked();
    const user = { key: "user-write:user:a", rule: { perMinute: 1, burst: 1 } };
    const channel = { key: "channel-write:c", rule: { perMinute: 1, burst: 3 } };
    expect(allowed(buckets.take([user, channel]))).toEqual([true, true]);
    const refused = buckets.take([user, channel]);
    expect(allowed(refused)).toEqual([false, true]);
    expect(Math.floor(refused[1]!.tokens)).toBe(2);
  });

  test("exactly the user's burst is admitted, and the channel loses only those tokens", () => {
    const { buckets } = clocked();
    const user = { key: "user-write:user:b", rule: { perMinute: 1, burst: 2 } };
    const channel = { key: "channel-write:c", rule: { perMinute: 1, burst: 5 } };
    const results = Array.from({ length: 10 }, () => buckets.take([user, channel]));
    expect(results.filter((states) => states.every((s) => s.allowed))).toHaveLength(2);
    expect(Math.floor(buckets.take([channel])[0]!.tokens)).toBe(2);
  });

  test("a bucket refills at its rate, up to its burst", () => {
    const { buckets, advance } = clocked();
    const take = { key: "refill", rule: { perMinute: 6000, burst: 2 } }; // 100 tokens a second
    expect(allowed([...buckets.take([take]), ...buckets.take([take]), ...buckets.take([take])])).toEqual([true, true, false]);
    advance(10);
    expect(allowed(buckets.take([take]))).toEqual([true]);
    expect(allowed(buckets.take([take]))).toEqual([false]);
    advance(60_000);
    expect(buckets.take([take])[0]!.tokens).toBe(1);
  });

  test("a round sends what was taken since the last one; PostgreSQL's level replaces the copy, less what was taken meanwhile", () => {
    const { buckets } = clocked();
    const take = { key: "k", rule: { perMinute: 1, burst: 10 } };
    for (let i = 0; i < 3; i++) buckets.take([take]);
    expect(buckets.startRound()).toEqual([{ key: "k", rule: take.rule, taken: 3 }]);
    buckets.take([take]);
    buckets.take([take]);
    // Another instance took 5 as well: 10 − 3 − 5 = 2 after this round's 3.
    buckets.finishRound([{ key: "k", rule: take.rule, tokens: 2 }]);
    // 2 less the 2 taken during the round: nothing left.
    expect(allowed(buckets.take([take]))).toEqual([false]);
    expect(buckets.startRound()).toEqual([{ key: "k", rule: take.rule, taken: 2 }]);
  });

  test("a round PostgreSQL did not answer: its tokens go with the next one, none lost, none doubled", () => {
    const { buckets } = clocked();
    const take = { key: "k", rule: { perMinute: 1, burst: 10 } };
    for (let i = 0; i < 3; i++) buckets.take([take]);
    expect(buckets.startRound()[0]!.taken).toBe(3);
    buckets.take([take]);
    buckets.failRound();
    expect(buckets.startRound()[0]!.taken).toBe(4);
    buckets.finishRound([{ key: "k", rule: take.rule, tokens: 6 }]);
    expect(buckets.startRound()[0]!.taken).toBe(0);
  });

  test("a full bucket with nothing to send is dropped; one with tokens to send is kept even once refilled", () => {
    const { buckets, advance } = clocked();
    const quiet = { key: "quiet", rule: { perMinute: 60, burst: 5 } };
    const busy = { key: "busy", rule: { perMinute: 60, burst: 5 } };
    buckets.take([quiet]);
    buckets.startRound();
    buckets.finishRound([{ key: "quiet", rule: quiet.rule, tokens: 4 }]);
    buckets.take([busy]);
    advance(1_000);
    expect(buckets.startRound().map((s) => [s.key, s.taken])).toEqual([["busy", 1]]);
    expect(buckets.size).toBe(1);
  });

  test("a level read back for a bucket not held (another instance's spending) is held from then on", () => {
    const { buckets } = clocked();
    const take = { key: "elsewhere", rule: { perMinute: 60, burst: 5 } };
    buckets.finishRound([{ key: "elsewhere", rule: take.rule, tokens: 0.5 }]);
    const [state] = buckets.take([take]);
    expect(state!.allowed).toBe(false);
    expect(state!.tokens).toBeCloseTo(0.5);
  });

  test("a level below zero (debt) is refilled like any other", () => {
    const { buckets, advance } = clocked();
    const take = { key: "debt", rule: { perMinute: 60, burst: 5 } };
    buckets.take([take]);
    buckets.startRound();
    buckets.finishRound([{ key: "debt", rule: take.rule, tokens: -3 }]);
    advance(3_500);
    expect(allowed(buckets.take([take]))).toEqual([false]);
    advance(1_000);
    expect(allowed(buckets.take([take]))).toEqual([true]);
  });
});
