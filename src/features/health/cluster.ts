import { Elysia, t } from "elysia";
import { AppError } from "../../errors.ts";
import { ErrorBody } from "../../http/errors.ts";

const ClusterView = t.Object({
  instance: t.String({ description: "INSTANCE_ID of the instance that answered" }),
  incarnation: t.String({ description: "This run of it (instance id and a per-start nonce): the owner named in leases and fences" }),
  members: t.Integer({ description: "Live instances, by their presence keys" }),
  shards: t.Array(t.Integer(), { description: "The channel shards this instance owns" }),
  leaders: t.Array(t.String(), { description: "The roles it leads: sync (the /sync poller and the inbox), outbox (the event-outbox flusher)" }),
  owners: t.Record(t.String(), t.String(), { description: "shard -> owning incarnation, as of the last lease round" }),
  channel: t.Optional(t.Object({ id: t.String(), shard: t.Integer(), owner: t.Union([t.String(), t.Null()]) })),
});

export interface ClusterView {
  instance: string;
  incarnation: string;
  members: number;
  shards: number[];
  leaders: string[];
  owners: Record<string, string>;
}

/** GET /internal/cluster: who owns what, for operators (behind INTERNAL_SERVICE_TOKEN like every /internal route). */
export function clusterController(cluster: { snapshot(): ClusterView | null; ownerOf(channelId: string): { shard: number; owner: string | null } } | null) {
  return new Elysia({ name: "cluster.controller" }).get(
    "/internal/cluster",
    ({ query }) => {
      const snapshot = cluster?.snapshot();
      if (!cluster || !snapshot) throw new AppError(404, "NOT_CLUSTERED", "this instance does not run in cluster mode (CLUSTER=on)");
      if (!query.channel_id) return snapshot;
      return { ...snapshot, channel: { id: query.channel_id, ...cluster.ownerOf(query.channel_id) } };
    },
    {
      query: t.Object({ channel_id: t.Optional(t.String({ format: "uuid" })) }),
      response: { 200: ClusterView, 400: ErrorBody, 404: ErrorBody },
      detail: { summary: "Cluster mode: this instance's shards and roles, and who owns each shard (or one channel)", tags: ["health"] },
    },
  );
}
