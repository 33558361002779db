import { Elysia } from "elysia";
import type { Metrics, ActorSample, ScrapeSample } from "../metrics/metrics.ts";
import { sameSecret } from "./auth/secrets.ts";
import { AppError } from "../errors.ts";

const started = new WeakMap<Request, number>();

export const METRICS_PATH = "/metrics";

/** Every request counted and timed by its route template; a request no route matched is "unmatched". */
export const requestMetrics = (metrics: Metrics) =>
  new Elysia({ name: "request-metrics" })
    .onRequest(({ request }) => {
      started.set(request, performance.now());
    })
    .onAfterResponse({ as: "global" }, ({ request, route, set }) => {
      const begin = started.get(request);
      const status = typeof set.status === "number" ? set.status : 200;
      const seconds = begin === undefined ? 0 : (performance.now() - begin) / 1000;
      metrics.httpRequest(request.method, route || "unmatched", status, seconds);
    });

export interface MetricsSources {
  actors: () => ActorSample;
  depths: () => Promise<ScrapeSample>;
  /** When set, a scrape must present it as a Bearer token. */
  token?: string;
}

/** GET /metrics in Prometheus text format; left out of the OpenAPI document (README "Metrics"). */
export const metricsController = (metrics: Metrics, sources: MetricsSources) =>
  new Elysia({ name: "metrics.controller" }).get(
    METRICS_PATH,
    async ({ request }) => {
      if (sources.token && !presentsToken(request.headers.get("authorization"), sources.token)) {
        throw new AppError(401, "UNAUTHENTICATED", "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>", { "WWW-Authenticate": "Bearer" });
      }
      const text = await metrics.render(sources.actors(), sources.depths);
      return new Response(text, { headers: { "content-type": metrics.contentType } });
    },
    { detail: { hide: true } },
  );

function presentsToken(header: string | null, token: string): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? "");
  return match !== null && sameSecret(match[1]!, token);
}
