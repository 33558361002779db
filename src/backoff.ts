/**
 * Retry delays with jitter. Without it, every channel that failed while the homeserver was
 * down retries at the same instants, and the homeserver that just came back gets all of them
 * at once. "Equal jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): half of
 * the capped exponential delay is kept as a floor, so a retry is never immediate, and the
 * other half is random.
 */
export interface BackoffPolicy {
  /** The delay ceiling of the first retry; it doubles with each attempt. */
  baseMs: number;
  /** The most any retry waits. */
  capMs: number;
}

/** The capped exponential delay ceiling for `attempt` (0 for the first retry). */
export function backoffCeiling(attempt: number, { baseMs, capMs }: BackoffPolicy): number {
  return Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
}

/** A delay in [ceiling / 2, ceiling]; `random` is a source of numbers in [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(attempt, policy);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * A delay of at least `minimumMs` (what the homeserver asked for, retry_after_ms), with up to
 * half the attempt's ceiling of jitter on top: callers told the same wait do not come back
 * together either.
 */
export function backoffAtLeast(minimumMs: number, attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return Math.max(0, minimumMs) + Math.round(random() * (backoffCeiling(attempt, policy) / 2));
}
