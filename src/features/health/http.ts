import { Elysia, t } from "elysia";
import { liveCounts } from "../../lifecycle/live.ts";

export interface HealthInfo {
  database: string;
  matrix: string;
  events: string;
  actors: () => number;
}

export const healthController = (info: HealthInfo) =>
  new Elysia({ name: "health.controller" }).get(
    "/health",
    () => ({
      status: "healthy" as const,
      service: "messaging-service",
      version: "0.1.0",
      database: info.database,
      matrix: info.matrix,
      events: info.events,
      active_actors: info.actors(),
      live: liveCounts(),
    }),
    {
      response: t.Object({
        status: t.Literal("healthy"),
        service: t.String(),
        version: t.String(),
        database: t.String(),
        matrix: t.String(),
        events: t.String(),
        active_actors: t.Integer(),
        live: t.Record(t.String(), t.Integer(), { description: "Live resources in this process (servers, pollers, actors, pools)" }),
      }),
      detail: { summary: "Liveness and which adapters are in use", tags: ["health"] },
    },
  );
