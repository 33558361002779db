import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { instrumentCalls } from "./instrument.ts";

/** What is counted in the database, read once per scrape (never tracked in memory across instances). */
export interface ScrapeSample {
  outboxPending: number;
  inboxDepth: number;
  natsOutboxDepth: number;
}

/** What the running actors hold, read once per scrape. */
export interface ActorSample {
  actors: number;
  mailboxDepths: readonly number[];
}

const PREFIX = "messaging_";

/**
 * Default collectors that run under Bun but report nothing true: Bun lists no active handles,
 * requests or resources (always 0), JavaScriptCore has no V8 heap spaces (all 0 but one), and
 * no GC performance entries are emitted (the histogram stays empty). The rest (process CPU,
 * memory, file descriptors, start time, event-loop lag, heap size, version) work.
 */
const BLANK_UNDER_BUN = [
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
  "nodejs_gc_duration_seconds",
];
const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The service's Prometheus metrics (README "Metrics"), one registry per app: created by
 * startApp, never at import time, so a hot reload starts afresh instead of registering twice.
 * Labels are bounded sets only (route templates, methods, statuses, Matrix port operations):
 * never a channel id, a user id or a raw path.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly httpRequests = this.counter("http_requests_total", "HTTP requests by route template, method and status", ["method", "route", "status"]);
  private readonly httpDuration = this.histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"], SECONDS);
  private readonly wsConnections = new Gauge({ name: `${PREFIX}ws_connections`, help: "Open channel WebSockets", registers: [this.registry] });
  private readonly wsFrames = this.counter("ws_frames_sent_total", "Frames written to channel WebSockets (a published frame counts once per subscriber)");
  private readonly wsSlowCloses = this.counter("ws_slow_consumer_closes_total", "WebSockets closed with 4008 for letting too much pile up");
  private readonly actors = new Gauge({ name: `${PREFIX}channel_actors`, help: "Running channel actors", registers: [this.registry] });
  private readonly mailboxDepth = new Gauge({ name: `${PREFIX}channel_mailbox_depth`, help: "Jobs queued in the actors' mailboxes, summed or the largest", labelNames: ["aggregate"], registers: [this.registry] });
  private readonly batchSizes = this.histogram("channel_send_batch_size", "Sends written per group commit", [], [1, 2, 4, 8, 16, 32, 64, 128]);
  private readonly outboxPending = new Gauge({ name: `${PREFIX}outbox_pending_messages`, help: "Messages with delivery_state pending", registers: [this.registry] });
  private readonly outboxRetries = this.counter("outbox_retries_total", "Retries of pending sends scheduled after a transient Matrix failure");
  private readonly matrixCalls = this.counter("matrix_requests_total", "Matrix port calls by operation and outcome", ["operation", "outcome"]);
  private readonly matrixDuration = this.histogram("matrix_request_duration_seconds", "Matrix port call latency", ["operation", "outcome"], SECONDS);
  private readonly syncLag = this.histogram("matrix_sync_lag_seconds", "From an event's origin_server_ts to its indexing", [], [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]);
  private readonly inboxDepth = new Gauge({ name: `${PREFIX}matrix_inbox_depth`, help: "Matrix events in the inbox, not indexed yet", registers: [this.registry] });
  private readonly natsOutboxDepth = new Gauge({ name: `${PREFIX}nats_outbox_depth`, help: "Events in event_outbox, not acknowledged by JetStream yet", registers: [this.registry] });
  private readonly natsFailures = this.counter("nats_publish_failures_total", "JetStream publishes that failed (the events stay in the outbox)");

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const name of BLANK_UNDER_BUN) this.registry.removeSingleMetric(name);
  }

  httpRequest(method: string, route: string, status: number, seconds: number) {
    const labels = { method, route, status: String(status) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }

  socketOpened() {
    this.wsConnections.inc();
  }

  socketClosed() {
    this.wsConnections.dec();
  }

  framesSent(count: number) {
    if (count > 0) this.wsFrames.inc(count);
  }

  slowConsumerClosed() {
    this.wsSlowCloses.inc();
  }

  batchCommitted(size: number) {
    this.batchSizes.observe(size);
  }

  outboxRetried() {
    this.outboxRetries.inc();
  }

  eventIndexed(originServerTs: number) {
    this.syncLag.observe(Math.max(0, Date.now() - originServerTs) / 1000);
  }

  natsPublishFailed() {
    this.natsFailures.inc();
  }

  matrixCall(operation: string, outcome: string, seconds: number) {
    this.matrixCalls.inc({ operation, outcome });
    this.matrixDuration.observe({ operation, outcome }, seconds);
  }

  /** The Matrix port, each call counted and timed under its method name (a bounded set). */
  instrumentMatrix<T extends object>(backend: T): T {
    return instrumentCalls(backend, (operation, outcome, seconds) => this.matrixCall(operation, outcome, seconds));
  }

  /** The text exposition, with the gauges read at scrape time set first. */
  async render(actors: ActorSample, sample: () => Promise<ScrapeSample>): Promise<string> {
    this.actors.set(actors.actors);
    this.mailboxDepth.set({ aggregate: "sum" }, actors.mailboxDepths.reduce((a, b) => a + b, 0));
    this.mailboxDepth.set({ aggregate: "max" }, Math.max(0, ...actors.mailboxDepths));
    const counts = await sample();
    this.outboxPending.set(counts.outboxPending);
    this.inboxDepth.set(counts.inboxDepth);
    this.natsOutboxDepth.set(counts.natsOutboxDepth);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private counter(name: string, help: string, labelNames: string[] = []) {
    return new Counter({ name: PREFIX + name, help, labelNames, registers: [this.registry] });
  }

  private histogram(name: string, help: string, labelNames: string[], buckets: number[]) {
    return new Histogram({ name: PREFIX + name, help, labelNames, buckets, registers: [this.registry] });
  }
}
