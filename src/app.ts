import { Elysia } from "elysia";
import type { Server } from "bun";
import type { Config } from "./config.ts";
import { createLogger, type Logger } from "./log.ts";
import { openDatabase } from "./store/db.ts";
import { migrate } from "./store/migrate.ts";
import { LocalMatrixBackend } from "./matrix/local.ts";
import { SynapseMatrixBackend } from "./matrix/synapse.ts";
import { InboxDispatcher } from "./inbound/dispatcher.ts";
import { appserviceController, homeserverAuthentication } from "./inbound/push.ts";
import type { Sql } from "./store/db.ts";
import type { MatrixBackend } from "./matrix/port.ts";
import type { EventTypes } from "./domain/event-types.ts";
import { SyncPoller } from "./inbound/sync.ts";
import type { EventBus } from "./events/bus.ts";
import { MemoryEventBus } from "./events/memory.ts";
import { NatsEventBus } from "./events/nats.ts";
import { KnownEchoes } from "./channel/known-echoes.ts";
import { ChannelRegistry } from "./channel/registry.ts";
import { ShutdownStack } from "./lifecycle/stack.ts";
import { acquire } from "./lifecycle/live.ts";
import { errorHandler } from "./http/errors.ts";
import { requestLog } from "./http/request-log.ts";
import { requestId } from "./http/request-id.ts";
import { idempotency } from "./http/idempotency.ts";
import { IdempotencyOwner } from "./http/idempotency-owner.ts";
import { anyBucketOn, rateLimit, rateLimitConfig } from "./http/rate-limit.ts";
import { TokenBuckets } from "./http/rate-buckets.ts";
import { RateReconciler } from "./http/rate-reconciler.ts";
import { startBucketPruning } from "./http/rate-pruning.ts";
import { bodyLimit } from "./http/body-limit.ts";
import { rejectNulCharacters } from "./http/text-input.ts";
import { openApiCompletion } from "./http/openapi.ts";
import { apiDocs, SPEC_PATH } from "./http/docs.ts";
import { useFastFormats } from "./http/formats.ts";
import { corsPolicy } from "./http/cors.ts";
import type { ServiceDeps } from "./features/deps.ts";
import type { RealtimeDeps } from "./realtime/deps.ts";
import { channelTables, featureRoutes } from "./features/index.ts";
import { wsController } from "./realtime/endpoint.ts";
import type { ServerFrame } from "./wire/frames.ts";
import { BUN_LIMIT_MARGIN_BYTES, ChannelFanout } from "./realtime/fanout.ts";
import { readyController } from "./features/health/ready.ts";
import { StartupProgress } from "./lifecycle/startup.ts";
import { authMode, isProduction } from "./config.ts";
import { createAuthenticator } from "./http/auth/authenticator.ts";
import { authentication, internalOnly } from "./http/auth/plugin.ts";
import { SocketRegistry } from "./realtime/sockets.ts";
import { realtimeDocsController } from "./realtime-docs/index.ts";
import { demoController } from "./demo/index.ts";
import { Metrics } from "./metrics/metrics.ts";
import { metricsController, requestMetrics } from "./http/metrics.ts";
import { queueDepths } from "./store/depths.ts";
import { instanceId } from "./config.ts";
import { Cluster } from "./cluster/index.ts";
import { clusterController } from "./features/health/cluster.ts";
import { spaceRoomEvent } from "./features/spaces/ingest.ts";
import { AddressGuard } from "./domain/fetch-guard.ts";
import { PreviewWorker } from "./features/previews/worker.ts";

export interface RunningApp {
  url: string;
  port: number;
  deps: ServiceDeps;
  /** The rate limiter's in-memory buckets and their reconciliation with PostgreSQL. */
  rateLimits: RateReconciler;
  stop(): Promise<void>;
}

/**
 * The composition root: opens every resource in order, and stop() closes them in reverse
 * (sync poller, HTTP server, actors, event bus, Matrix backend, database). Nothing here runs
 * at import time.
 */
export interface StartOptions {
  log?: Logger;
  /** Tests wrap the real backend to hold or fail calls at chosen moments. */
  wrapMatrix?: (backend: MatrixBackend) => MatrixBackend;
}

export async function startApp(config: Config, opts: StartOptions = {}): Promise<RunningApp> {
  useFastFormats();
  const baseLog = opts.log ?? createLogger(config.LOG_LEVEL);
  // In a cluster every line names the instance that wrote it.
  const log = config.CLUSTER === "on" ? baseLog.child({ instance: instanceId(config) }) : baseLog;
  const stack = new ShutdownStack();
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      log.info("stopping");
      await stack.close((name, err) => log.error({ component: name, err: String(err) }, "error while stopping"));
      log.info("stopped");
    })());
  try {
    const limits = rateLimitConfig(config);
    const clustered = config.CLUSTER === "on";
    // One run of this instance: the owner named in leases and fences (a restart is a new owner).
    const incarnation = `${instanceId(config)}-${Bun.randomUUIDv7().slice(-8)}`;
    const db = await openDatabase(
      { url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolMax: config.DATABASE_POOL_MAX, fenceIdentity: clustered ? incarnation : undefined },
      log,
    );
    const releaseDb = acquire("database");
    stack.push("database", async () => {
      await db.close();
      releaseDb();
    });
    await migrate(db.sql, log);
    const startup = new StartupProgress(config.MATRIX_EVENTS_MODE === "sync" ? "the first sync round has not completed" : "the inbox left by the last run is not drained yet");
    startup.markMigrated();
    const pruning = startBucketPruning(db.sql, log);
    stack.push("rate-limit-pruning", () => pruning.stop());
    // Stopped after the HTTP server, so its last round sends every token taken.
    const rateLimits = new RateReconciler(db.sql, new TokenBuckets(), log, config.RATE_LIMIT_RECONCILE_MS);
    if (anyBucketOn(limits)) rateLimits.start();
    stack.push("rate-limit-reconciler", () => rateLimits.stop());
    const idempotencyOwner = new IdempotencyOwner(db.sql, log);
    await idempotencyOwner.start();
    stack.push("idempotency-owner", () => idempotencyOwner.stop());

    // One registry per app: a second app in the process (tests, a hot reload) counts on its own.
    const metrics = new Metrics();
    const tables = channelTables();
    const baseMatrix = createMatrixBackend(config, db.sql, log, tables.handlers.types);
    const instrumented = metrics.instrumentMatrix(baseMatrix);
    const matrix = opts.wrapMatrix ? opts.wrapMatrix(instrumented) : instrumented;
    const releaseMatrix = acquire("matrix_backend");
    stack.push("matrix", async () => {
      await matrix.close();
      releaseMatrix();
    });

    const events: EventBus = config.NATS_URL ? new NatsEventBus(config.NATS_URL, db.sql, log, metrics) : new MemoryEventBus();
    const releaseEvents = acquire("event_bus");
    stack.push("events", async () => {
      await events.close();
      releaseEvents();
    });

    const cluster = clustered
      ? await Cluster.connect(
          {
            natsUrl: config.NATS_URL!,
            name: config.CLUSTER_NAME,
            instance: instanceId(config),
            incarnation,
            leaseTtlMs: config.CLUSTER_LEASE_TTL_MS,
            ownerWaitMs: config.CLUSTER_OWNER_WAIT_MS,
            log,
          },
          db.sql,
        )
      : null;
    // Closed after the HTTP server (forwarding serves the requests still in flight).
    if (cluster) stack.push("cluster", () => cluster.close());

    const fanout = new ChannelFanout(config.WS_BACKPRESSURE_LIMIT_BYTES, metrics);
    const sockets = new SocketRegistry();
    // Every frame says which point of the channel it belongs to: a message frame its message's
    // seq, any other frame the channel's latest seq when it was sent (see WebSocket protocol).
    const stamped = (channelId: string, frame: ServerFrame): ServerFrame => ("seq" in frame ? frame : ({ ...frame, seq: registry.seqOf(channelId) } as unknown as ServerFrame));
    // A single instance's poller and actors share one process: the echoes of its own sends can be known in memory.
    const knownEchoes = cluster ? undefined : new KnownEchoes();
    const registry = new ChannelRegistry({
      ...tables,
      knownEchoes,
      sql: db.sql,
      matrix,
      events,
      log,
      // In a cluster, frames and revocations go to every instance's sockets through NATS (src/cluster/relay.ts).
      sockets: cluster?.publisher ?? sockets,
      metrics,
      broadcast: cluster
        ? (channelId, frame) => cluster.broadcast(channelId, stamped(channelId, frame))
        : (channelId, frame) => fanout.publish(channelId, JSON.stringify(stamped(channelId, frame))),
      claim: cluster?.claim,
      stillOwner: cluster?.stillOwner,
      mailboxSize: config.ACTOR_MAILBOX_SIZE,
      idleMs: config.ACTOR_IDLE_MS,
      linkPreviews: config.LINK_PREVIEWS === "on",
    });
    // Shutdown order: stop accepting connections, drain the actors (which answers the requests
    // waiting on them), let those answers go out, then close what is left (WebSockets included).
    let server: Server<unknown> | null = null;
    let releaseServer = () => {};
    stack.push("http", async () => {
      if (!server) return;
      await waitForIdleRequests(server, 5000);
      fanout.closeAll(1001, "server shutting down: reconnect with since_seq");
      server.stop(true);
      releaseServer();
    });
    stack.push("actors", () => registry.stop());
    const dispatcher = new InboxDispatcher({
      sql: db.sql,
      registry,
      log,
      handlers: tables.handlers,
      otherRoom: (event) => spaceRoomEvent({ sql: db.sql, matrix, log, events }, event),
    });
    stack.push("inbox", () => dispatcher.stop());

    const auth = createAuthenticator(config);
    warnAboutDevAuth(config, log);
    const deps: RealtimeDeps = {
      sql: db.sql,
      matrix,
      events,
      registry,
      log,
      sendConfirmMs: config.SEND_CONFIRM_TIMEOUT_MS,
      auth,
      sockets,
      metrics,
      observer: cluster ? { observe: (channelId, fn, reached) => cluster.observer.observe(channelId, fn, reached) } : undefined,
    };
    const syncPoller = () =>
      new SyncPoller({ sql: db.sql, matrix, dispatcher, log, timeoutMs: config.SYNC_TIMEOUT_MS, knownEchoes, onCaughtUp: () => startup.markCaughtUp() }, matrixStateKey(config));
    if (cluster) {
      let poller: SyncPoller | null = null;
      cluster.start({
        registry,
        fanout,
        sockets,
        dispatcher,
        events: events as NatsEventBus,
        // The elected instance polls /sync (sync mode); in push mode any instance takes transactions and wakes it.
        sync: {
          start: async () => {
            if (config.MATRIX_EVENTS_MODE !== "sync" || poller) return;
            poller = syncPoller();
            poller.start();
          },
          stop: async () => {
            await poller?.stop();
            poller = null;
          },
        },
        // Caught up means: this instance knows who owns what (the leader of sync reads the homeserver).
        onFirstRound: () => startup.markCaughtUp(),
      });
      // First to run on stop: the leases are handed over while the server still forwards.
      stack.push("cluster-handover", () => cluster.handOver());
    }
    // After the cluster routes ops to owners; stopped before the actors it hands previews to and the homeserver it asks.
    if (config.LINK_PREVIEWS === "on") {
      const previews = new PreviewWorker({
        sql: db.sql,
        matrix,
        registry,
        events,
        log,
        owner: incarnation,
        concurrency: config.LINK_PREVIEW_CONCURRENCY,
        cacheTtlS: config.LINK_PREVIEW_CACHE_TTL_S,
      });
      previews.start();
      const releasePreviews = acquire("preview_worker");
      stack.push("link-previews", async () => {
        await previews.stop();
        releasePreviews();
      });
    }
    const app = buildHttpApp({ config, deps, sql: db.sql, databaseKind: db.kind, limits, rateBuckets: rateLimits.buckets, idempotencyOwner, fanout, dispatcher, startup, metrics, cluster }).listen({
      port: config.PORT,
      hostname: config.HOST,
    });
    const listening = app.server!;
    server = listening;
    fanout.attach((topic, data) => void listening.publish(topic, data));
    releaseServer = acquire("http_server");
    stack.push("http-accept", () => {
      // Not awaited: it resolves only once every connection is gone, which the "http" step forces.
      void listening.stop(false);
    });

    if (config.MATRIX_EVENTS_MODE === "sync") {
      // In a cluster the elected instance polls (cluster.start above).
      if (!cluster) {
        const poller = syncPoller();
        poller.start();
        const releasePoller = acquire("sync_poller");
        stack.push("sync", async () => {
          await poller.stop();
          releasePoller();
        });
      }
    } else {
      // Push mode: events arrive on /_matrix/app/v1/transactions; pick up what a crash left,
      // and tell the homeserver we are back so it redelivers without waiting out its backoff.
      void dispatcher.drain().then(() => startup.markCaughtUp());
      if (baseMatrix instanceof SynapseMatrixBackend) {
        baseMatrix
          .pingAppservice(config.MATRIX_AS_ID)
          .then(() => log.info("homeserver pinged the push endpoint"))
          .catch((err) => log.warn({ err: String(err) }, "homeserver could not ping the push endpoint; check the registration url"));
      }
    }

    const port = listening.port!;
    const url = `http://${config.HOST === "0.0.0.0" ? "127.0.0.1" : config.HOST}:${port}`;
    log.info({ port, database: db.kind, matrix: matrix.kind, events: events.kind, ...(cluster ? { cluster: incarnation } : {}) }, "daarion-messaging listening");
    return { url, port, deps, rateLimits, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface HttpParts {
  config: Config;
  deps: RealtimeDeps;
  sql: Sql;
  databaseKind: string;
  limits: ReturnType<typeof rateLimitConfig>;
  rateBuckets: TokenBuckets;
  idempotencyOwner: IdempotencyOwner;
  fanout: ChannelFanout;
  dispatcher: InboxDispatcher;
  startup: StartupProgress;
  metrics: Metrics;
  cluster?: Cluster | null;
}

/**
 * The HTTP API with every middleware and route, not yet listening. Its type is App, which a
 * typed client (Eden Treaty) is built from.
 */
export function buildHttpApp({ config, deps, sql, databaseKind, limits, rateBuckets, idempotencyOwner, fanout, dispatcher, startup, metrics, cluster = null }: HttpParts) {
  // The document's completion reads the routes' body schemas, known once the app is built.
  const built: { routes: () => ReadonlyArray<{ method: string; path: string; hooks: { body?: unknown } }> } = { routes: () => [] };
  const app = new Elysia({
    normalize: false,
    // No response schema transforms a value: Elysia's t.Integer is a string-or-integer transform
    // for query strings, whose Encode is the identity. Encoding would walk every response with
    // TypeBox's uncompiled value walker (9 % of a page's CPU); the compiled Check still runs.
    encodeSchema: false,
    // The fan-out cuts a slow subscriber off at WS_BACKPRESSURE_LIMIT_BYTES; Bun's own limit,
    // which drops frames, must stay out of its way.
    websocket: { backpressureLimit: config.WS_BACKPRESSURE_LIMIT_BYTES + BUN_LIMIT_MARGIN_BYTES },
  })
    // First, so the latency covers every hook after it.
    .use(requestMetrics(metrics))
    .use(requestId())
    .use(corsPolicy(config))
    .use(authentication(deps.auth))
    .use(internalOnly(config.INTERNAL_SERVICE_TOKEN))
    .use(idempotency(sql, idempotencyOwner))
    .use(errorHandler(deps.log))
    .use(requestLog(deps.log))
    // Ahead of the rate limit: a scrape is never limited.
    .use(metricsController(metrics, { actors: () => scrapeActors(deps), depths: () => queueDepths(sql), token: config.METRICS_TOKEN }))
    .use(rateLimit(rateBuckets, limits, deps.auth))
    .use(homeserverAuthentication(config.MATRIX_HS_TOKEN))
    .use(bodyLimit(config.MAX_BODY_BYTES))
    .use(rejectNulCharacters())
    .use(openApiCompletion(SPEC_PATH, () => built.routes()))
    .use(apiDocs())
    .use(realtimeDocsController())
    .use(demoController(authMode(config) === "dev"))
    .use(readyController(deps, startup, undefined, cluster ?? undefined))
    .use(clusterController(cluster))
    .use(featureRoutes({ ...deps, health: { database: databaseKind, matrix: deps.matrix.kind, events: deps.events.kind, actors: () => deps.registry.size }, maxUploadBytes: config.MAX_UPLOAD_BYTES, voiceLimits: { maxDurationMs: config.VOICE_MAX_DURATION_MS, decodeTimeoutMs: config.VOICE_DECODE_TIMEOUT_MS } }))
    .use(wsController(deps, fanout, config.WS_BACKPRESSURE_LIMIT_BYTES, config.WS_MAX_FRAMES_PER_SEC))
    .use(appserviceController({ sql, hsToken: config.MATRIX_HS_TOKEN, dispatcher }));
  built.routes = () => app.routes;
  return app;
}

const scrapeActors = ({ registry }: RealtimeDeps) => ({ actors: registry.size, mailboxDepths: registry.mailboxDepths() });

/** The type of the service's HTTP API: `treaty<App>(url)` from @elysiajs/eden is a typed client. */
export type App = ReturnType<typeof buildHttpApp>;

/** The embedded setup trusts headers; say so where operators look. */
function warnAboutDevAuth(config: Config, log: Logger): void {
  if (authMode(config) === "dev") {
    log.warn("AUTH_MODE=dev: X-User-Id is trusted as the caller's identity, unverified. Never expose this service; set AUTH_MODE=jwt in production");
  }
  if (!config.INTERNAL_SERVICE_TOKEN) {
    log.warn("INTERNAL_SERVICE_TOKEN is not set: /internal/* endpoints are open to anyone who can reach the service");
  }
  if (isProduction(config) && !config.METRICS_TOKEN) {
    log.warn("METRICS_TOKEN is not set: /metrics is open to anyone who can reach the service; keep it off the public network or set the token");
  }
}

export function createMatrixBackend(config: Config, sql: Sql, log: Logger, eventTypes: EventTypes): MatrixBackend {
  if (config.MATRIX_HOMESERVER_URL) {
    return new SynapseMatrixBackend({
      baseUrl: config.MATRIX_HOMESERVER_URL,
      serverName: config.MATRIX_SERVER_NAME,
      asToken: config.MATRIX_AS_TOKEN!,
      syncUserId: `@${config.MATRIX_SYNC_USER_LOCALPART}:${config.MATRIX_SERVER_NAME}`,
      retryBudgetMs: config.MATRIX_RETRY_MAX_MS,
      syncTimelineLimit: config.MATRIX_SYNC_TIMELINE_LIMIT,
      eventTypes,
      log: log.child({ component: "synapse" }),
    });
  }
  const turn = config.TURN_URIS && config.TURN_SHARED_SECRET
    ? { uris: config.TURN_URIS.split(",").map((u) => u.trim()), sharedSecret: config.TURN_SHARED_SECRET, ttlS: config.TURN_TTL_S }
    : null;
  const previews = config.LINK_PREVIEWS === "on"
    ? { guard: AddressGuard.parse(config.LINK_PREVIEW_ALLOWED_ADDRESSES), timeoutMs: config.LINK_PREVIEW_TIMEOUT_MS, maxBytes: config.LINK_PREVIEW_MAX_BYTES }
    : null;
  return new LocalMatrixBackend(sql, config.MATRIX_SERVER_NAME, turn, previews);
}

function matrixStateKey(config: Config): string {
  return config.MATRIX_HOMESERVER_URL ? `synapse:${config.MATRIX_HOMESERVER_URL}` : `local:${config.MATRIX_SERVER_NAME}`;
}

/** Waits (bounded) until the server has no request in progress. */
async function waitForIdleRequests(server: Server<unknown>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (server.pendingRequests > 0 && Date.now() < deadline) await Bun.sleep(10);
}
