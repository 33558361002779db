import { Elysia, t } from "elysia";
import type { Logger } from "../../log.ts";
import { TimeoutError, withTimeout } from "../../deadline.ts";
import type { StartupProgress } from "../../lifecycle/startup.ts";
import type { ServiceDeps } from "../deps.ts";
import { pingDatabase } from "../../store/db.ts";

/** A dependency's answer to a cheap request, bounded by the check's timeout. */
export type Probe = (timeoutMs: number) => Promise<void>;

/** Long enough for a healthy dependency under load, short enough for a probe's own timeout. */
export const READY_CHECK_TIMEOUT_MS = 1000;

const RETRY_AFTER_SECONDS = "5";

const Check = t.Object({
  ok: t.Boolean(),
  ms: t.Optional(t.Number({ description: "How long the check took" })),
  error: t.Optional(t.String({ description: "Why it failed: timeout, unreachable, or what start-up still waits for", examples: ["timeout"] })),
});
const ReadyBody = t.Object({
  status: t.Union([t.Literal("ready"), t.Literal("not_ready")]),
  checks: t.Object({ database: Check, matrix: Check, events: Check, startup: Check, cluster: t.Optional(Check) }),
});

/** Cluster mode: this instance's NATS link for leases and forwarding, and whether it is handing over (SIGTERM). */
export interface ClusterProbe {
  ping: Probe;
  readonly handingOver: boolean;
}

/**
 * /ready: whether this instance should get traffic. Every dependency is asked at once, each with
 * its own short timeout; the answer names the part that is down and never a reason's details
 * (those go to the log, once per change).
 */
export function readyController(
  deps: Pick<ServiceDeps, "sql" | "matrix" | "events" | "log">,
  startup: StartupProgress,
  timeoutMs = READY_CHECK_TIMEOUT_MS,
  cluster?: ClusterProbe,
) {
  const probes: Record<string, Probe> = {
    database: () => pingDatabase(deps.sql),
    matrix: (ms) => deps.matrix.ping(ms),
    events: (ms) => deps.events.ping(ms),
  };
  if (cluster) probes.cluster = (ms) => (cluster.handingOver ? Promise.reject(new Error("handing its channels over")) : cluster.ping(ms));
  const log: Logger = deps.log;
  const wasOk = new Map<string, boolean>();
  const run = async (name: string, probe: Probe): Promise<[string, { ok: boolean; ms: number; error?: string }]> => {
    const begin = performance.now();
    let error: string | undefined;
    try {
      await withTimeout(probe(timeoutMs), timeoutMs);
    } catch (err) {
      error = err instanceof TimeoutError ? "timeout" : "unreachable";
      if (wasOk.get(name) !== false) log.warn({ check: name, err: err instanceof Error ? err.message : String(err) }, "readiness check failed");
    }
    if (!error && wasOk.get(name) === false) log.info({ check: name }, "readiness check recovered");
    wasOk.set(name, !error);
    const ms = Math.round((performance.now() - begin) * 10) / 10;
    return [name, error ? { ok: false, ms, error } : { ok: true, ms }];
  };
  return new Elysia({ name: "ready.controller" }).get(
    "/ready",
    async ({ set }) => {
      const results = Object.fromEntries(await Promise.all(Object.entries(probes).map(([name, probe]) => run(name, probe))));
      const pending = startup.pending();
      const checks = {
        database: results.database!,
        matrix: results.matrix!,
        events: results.events!,
        startup: pending ? { ok: false, error: pending } : { ok: true },
        ...(results.cluster ? { cluster: results.cluster } : {}),
      };
      const ready = Object.values(checks).every((c) => c.ok);
      if (!ready) {
        set.status = 503;
        set.headers["retry-after"] = RETRY_AFTER_SECONDS;
      }
      return { status: ready ? ("ready" as const) : ("not_ready" as const), checks };
    },
    {
      response: { 200: ReadyBody, 503: ReadyBody },
      detail: {
        summary: "Readiness: the database, the homeserver and NATS answer, and start-up caught up",
        description: "For orchestrators' readiness probes; /health is liveness. 503 with Retry-After names the part that is down.",
        tags: ["health"],
      },
    },
  );
}
