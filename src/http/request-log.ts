import { Elysia } from "elysia";
import type { Logger } from "../log.ts";

const started = new WeakMap<Request, number>();

/** One JSON line per request: method, route, status, duration. Never headers or bodies. */
export const requestLog = (log: Logger) =>
  new Elysia({ name: "request-log" })
    .onRequest(({ request }) => {
      started.set(request, performance.now());
    })
    .onAfterResponse({ as: "global" }, ({ request, route, set, params }) => {
      const begin = started.get(request);
      const status = typeof set.status === "number" ? set.status : 200;
      const p = params as Record<string, string> | undefined;
      log.info(
        {
          method: request.method,
          route: route || new URL(request.url).pathname,
          status,
          duration_ms: begin === undefined ? undefined : Math.round((performance.now() - begin) * 10) / 10,
          channel_id: p?.id ?? p?.channel_id,
        },
        "request",
      );
    });
