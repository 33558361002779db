import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { MatrixError, type MatrixBackend } from "../../src/matrix/port.ts";
import { registerRealUser, synapse, synapseMissing, synapseServiceEnv } from "../helpers/synapse.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort, LineWatcher } from "../helpers/process.ts";
import { parsePrometheus, samplesOf, valueOf, type Sample } from "../helpers/prometheus.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
}, 60000);
afterAll(() => server?.stop(), 60000);

const MESSAGES_ROUTE = "/api/messaging/channels/:id/messages";

async function scrape(target = server, headers: Record<string, string> = {}): Promise<Sample[]> {
  const res = await fetch(`${target.url}/metrics`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheus(await res.text());
}

/** Scrapes until `check` holds (a counter the server updates after answering), or fails after the timeout. */
async function scrapeUntil(check: (samples: Sample[]) => boolean, target = server, timeoutMs = 10000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const samples = await scrape(target);
    if (check(samples)) return samples;
    if (Date.now() > deadline) throw new Error("the metrics never showed the expected values");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("GET /metrics", () => {
  test("a send, a WebSocket subscriber and a Matrix user's message show up in their series", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const before = await scrape();
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    const sent = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "hello" } });
    expect(sent.status).toBe(201);
    expect((await inbox.nextOfType("message.created")).message.content_preview).toBe("hello");

    const { matrix } = server.app.deps;
    await matrix.join(channel.matrix_room_id, "@bob:example.org");
    await matrix.sendEvent(channel.matrix_room_id, "@bob:example.org", "m.room.message", { msgtype: "m.text", body: "from Element" }, "metrics-bob-1");
    expect((await inbox.nextOfType("message.created")).message.content_preview).toBe("from Element");

    const postLabels = { method: "POST", route: MESSAGES_ROUTE, status: "201" };
    const after = await scrapeUntil((s) => valueOf(s, "messaging_http_requests_total", postLabels) > valueOf(before, "messaging_http_requests_total", postLabels));
    expect(valueOf(after, "messaging_http_requests_total", postLabels) - valueOf(before, "messaging_http_requests_total", postLabels)).toBe(1);
    expect(valueOf(after, "messaging_http_request_duration_seconds_count", postLabels)).toBe(valueOf(after, "messaging_http_requests_total", postLabels));
    expect(valueOf(after, "messaging_http_request_duration_seconds_sum", postLabels)).toBeGreaterThan(0);

    expect(valueOf(after, "messaging_ws_connections")).toBe(valueOf(before, "messaging_ws_connections") + 1);
    // message.created twice and member.joined (Bob), at least, to the one subscriber.
    expect(valueOf(after, "messaging_ws_frames_sent_total") - valueOf(before, "messaging_ws_frames_sent_total")).toBeGreaterThanOrEqual(3);
    expect(valueOf(after, "messaging_channel_actors")).toBeGreaterThanOrEqual(1);
    expect(samplesOf(after, "messaging_channel_mailbox_depth").map((s) => s.labels.aggregate).sort()).toEqual(["max", "sum"]);
    expect(valueOf(after, "messaging_channel_send_batch_size_count") - valueOf(before, "messaging_channel_send_batch_size_count")).toBe(1);
    expect(valueOf(after, "messaging_channel_send_batch_size_sum") - valueOf(before, "messaging_channel_send_batch_size_sum")).toBe(1);

    // The Matrix port is counted by operation: the send went out, the poller syncs.
    const sends = valueOf(after, "messaging_matrix_requests_total", { operation: "sendEvents", outcome: "ok" });
    expect(sends - valueOf(before, "messaging_matrix_requests_total", { operation: "sendEvents", outcome: "ok" })).toBeGreaterThanOrEqual(1);
    expect(valueOf(after, "messaging_matrix_request_duration_seconds_count", { operation: "sendEvents", outcome: "ok" })).toBe(sends);
    expect(valueOf(after, "messaging_matrix_requests_total", { operation: "sync", outcome: "ok" })).toBeGreaterThanOrEqual(1);
    // Bob's join and message were indexed from Matrix: two lag observations, each a plausible age.
    const lagCount = valueOf(after, "messaging_matrix_sync_lag_seconds_count") - valueOf(before, "messaging_matrix_sync_lag_seconds_count");
    expect(lagCount).toBeGreaterThanOrEqual(2);
    const lagSum = valueOf(after, "messaging_matrix_sync_lag_seconds_sum") - valueOf(before, "messaging_matrix_sync_lag_seconds_sum");
    expect(lagSum / lagCount).toBeLessThan(30);

    for (const gauge of ["messaging_outbox_pending_messages", "messaging_matrix_inbox_depth", "messaging_nats_outbox_depth"]) {
      expect(samplesOf(after, gauge)).toHaveLength(1);
      expect(valueOf(after, gauge)).toBeGreaterThanOrEqual(0);
    }
    expect(valueOf(after, "messaging_outbox_pending_messages")).toBe(0);
    expect(valueOf(after, "process_resident_memory_bytes")).toBeGreaterThan(0);

    inbox.close();
    await inbox.closed;
    await scrapeUntil((s) => valueOf(s, "messaging_ws_connections") === valueOf(before, "messaging_ws_connections"));
  }, 30000);

  test("a request no route matched is counted as unmatched, never by its path", async () => {
    const before = await scrape();
    expect((await fetch(`${server.url}/no/such/path-${crypto.randomUUID()}`)).status).toBe(404);
    const labels = { method: "GET", route: "unmatched", status: "404" };
    const after = await scrapeUntil((s) => valueOf(s, "messaging_http_requests_total", labels) > valueOf(before, "messaging_http_requests_total", labels));
    expect(valueOf(after, "messaging_http_requests_total", labels) - valueOf(before, "messaging_http_requests_total", labels)).toBe(1);
    expect(samplesOf(after, "messaging_http_requests_total").some((s) => s.labels.route!.includes("no/such"))).toBe(false);
  });

  test("requests to many channels add no series: no channel id in any label", async () => {
    const read = (id: string) => server.api(`/api/messaging/channels/${id}/messages`, { as: "user:admin" });
    const httpSeries = (samples: Sample[]) => samples.filter((s) => s.name.startsWith("messaging_http_")).length;
    expect((await read(crypto.randomUUID())).status).toBe(404);
    const channel = await createChannel(server, "user:admin");
    expect((await read(channel.id)).status).toBe(200);
    const first = await scrapeUntil((s) => valueOf(s, "messaging_http_requests_total", { route: MESSAGES_ROUTE, status: "200" }) >= 1);
    const ids = Array.from({ length: 25 }, () => crypto.randomUUID());
    for (const id of ids) expect((await read(id)).status).toBe(404);
    const last = await scrapeUntil((s) => valueOf(s, "messaging_http_requests_total", { route: MESSAGES_ROUTE, status: "404" }) >= 26);
    expect(httpSeries(last)).toBe(httpSeries(first));
    const everyLabel = last.flatMap((s) => Object.values(s.labels)).join(" ");
    for (const id of [...ids, channel.id]) expect(everyLabel).not.toContain(id);
  });

  test("a Matrix call that fails is counted under its operation with the status class", async () => {
    const labels = { operation: "join", outcome: "4xx" };
    const before = valueOf(await scrape(), "messaging_matrix_requests_total", labels);
    await expect(server.app.deps.matrix.join("!no-such-room:example.org", "@bob:example.org")).rejects.toBeInstanceOf(MatrixError);
    expect(valueOf(await scrape(), "messaging_matrix_requests_total", labels)).toBe(before + 1);
  });

  test("/metrics is not in the OpenAPI document", async () => {
    const doc = (await (await fetch(`${server.url}/docs/json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).not.toContain("/metrics");
  });
});

describe("GET /metrics with METRICS_TOKEN", () => {
  const token = "metrics-token-0123456789";
  let guarded: TestServer;
  beforeAll(async () => {
    // One request a minute per anonymous address: scrapes must not draw from it.
    guarded = await startTestServer({ METRICS_TOKEN: token, RATE_LIMIT_ADDRESS_PER_MIN: "1", RATE_LIMIT_ADDRESS_BURST: "1" });
  }, 60000);
  afterAll(() => guarded?.stop(), 60000);

  test("without the token, or with another, it is 401; with it, 200, and scrapes are never rate-limited", async () => {
    const attempts: Array<Record<string, string>> = [{}, { authorization: "Bearer not-the-metrics-token" }, { authorization: token }];
    for (const headers of attempts) {
      const res = await fetch(`${guarded.url}/metrics`, { headers });
      expect(res.status).toBe(401);
      const body = await res.json();
      expect(body).toMatchObject({ error: "UNAUTHENTICATED" });
      expect(JSON.stringify(body)).not.toContain(token);
    }
    for (let i = 0; i < 5; i++) {
      const samples = await scrape(guarded, { authorization: `Bearer ${token}` });
      expect(samplesOf(samples, "messaging_channel_actors")).toHaveLength(1);
    }
  });
});

describe("outbox metrics", () => {
  let failing = true;
  let flaky: TestServer;
  const failSends = (backend: MatrixBackend): MatrixBackend =>
    new Proxy(backend, {
      get(target, key, receiver) {
        if (key === "sendEvents" && failing) return async () => Promise.reject(new MatrixError("M_UNKNOWN", "homeserver unavailable", 502));
        // A homeserver that can fail stands apart from the index: no sends inside its statements.
        if (key === "sendsInIndex") return undefined;
        const value = Reflect.get(target, key, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  beforeAll(async () => {
    flaky = await startTestServer({ SEND_CONFIRM_TIMEOUT_MS: "200" }, { wrapMatrix: failSends });
  }, 60000);
  afterAll(() => flaky?.stop(), 60000);

  test("a send Matrix cannot take stays pending and is retried; once delivered, nothing is pending", async () => {
    const channel = await createChannel(flaky, "user:admin");
    const res = await flaky.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "later" } });
    expect(res.status).toBe(202);
    const stuck = await scrapeUntil((s) => valueOf(s, "messaging_outbox_retries_total") >= 1, flaky);
    expect(valueOf(stuck, "messaging_outbox_pending_messages")).toBe(1);
    failing = false;
    const delivered = await scrapeUntil((s) => valueOf(s, "messaging_outbox_pending_messages") === 0, flaky);
    expect(valueOf(delivered, "messaging_matrix_requests_total", { operation: "sendEvents", outcome: "ok" })).toBeGreaterThanOrEqual(1);
  }, 30000);
});

describe.skipIf(synapseMissing())("Matrix metrics against Synapse", () => {
  let real: TestServer;
  beforeAll(async () => {
    real = await startTestServer(synapseServiceEnv({ SYNC_TIMEOUT_MS: "2000" }));
  }, 120000);
  afterAll(() => real?.stop(), 60000);

  test("the room, the send and the sync are counted; a Matrix user's message gives a sync-lag sample", async () => {
    const channel = await createChannel(real, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${real.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    expect((await real.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text: "to Synapse" } })).status).toBe(201);
    const before = await scrape(real);
    const bob = await registerRealUser("metrics");
    const asBob = { authorization: `Bearer ${bob.accessToken}`, "content-type": "application/json" };
    const joined = await fetch(`${synapse!.url}/_matrix/client/v3/join/${encodeURIComponent(channel.matrix_alias!)}`, { method: "POST", headers: asBob, body: "{}" });
    expect(joined.status).toBe(200);
    const room = encodeURIComponent(channel.matrix_room_id);
    const sent = await fetch(`${synapse!.url}/_matrix/client/v3/rooms/${room}/send/m.room.message/metrics-1`, {
      method: "PUT",
      headers: asBob,
      body: JSON.stringify({ msgtype: "m.text", body: "from a Matrix client" }),
    });
    expect(sent.status).toBe(200);
    expect((await inbox.nextOfType("message.created", 20000)).message.content_preview).toBe("to Synapse");
    expect((await inbox.nextOfType("message.created", 20000)).message.content_preview).toBe("from a Matrix client");
    const after = await scrape(real);
    for (const operation of ["createRoom", "sendEvents", "sync"]) {
      expect(valueOf(after, "messaging_matrix_requests_total", { operation, outcome: "ok" })).toBeGreaterThanOrEqual(1);
    }
    const lagCount = valueOf(after, "messaging_matrix_sync_lag_seconds_count") - valueOf(before, "messaging_matrix_sync_lag_seconds_count");
    expect(lagCount).toBeGreaterThanOrEqual(1);
    expect((valueOf(after, "messaging_matrix_sync_lag_seconds_sum") - valueOf(before, "messaging_matrix_sync_lag_seconds_sum")) / lagCount).toBeLessThan(30);
    inbox.close();
  }, 60000);
});

/** A nats-server of this suite's own: pausing it (SIGSTOP) makes JetStream publishes time out without touching the shared one. */
describe("NATS metrics", () => {
  let nats: Subprocess;
  let natsDir: string;
  let bus: TestServer;
  beforeAll(async () => {
    const port = await freePort();
    natsDir = mkdtempSync(join(tmpdir(), "daarion-metrics-nats-"));
    nats = Bun.spawn(["/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", String(port), "-js", "-sd", natsDir], { stdout: "ignore", stderr: "pipe" });
    await new LineWatcher(nats.stderr as ReadableStream<Uint8Array>).waitFor((line) => line.includes("Server is ready"), 1, 20000);
    bus = await startTestServer({ NATS_URL: `nats://127.0.0.1:${port}` });
  }, 60000);
  afterAll(async () => {
    nats?.kill("SIGCONT");
    await bus?.stop();
    nats?.kill("SIGKILL");
    await nats?.exited;
    rmSync(natsDir, { recursive: true, force: true });
  }, 60000);

  test("a publish JetStream does not acknowledge is counted, and its event waits in the outbox until it does", async () => {
    const channel = await createChannel(bus, "user:admin");
    const post = (text: string) => bus.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:admin", json: { text } });
    expect((await post("while NATS is up")).status).toBe(201);
    const flushed = await scrapeUntil((s) => valueOf(s, "messaging_nats_outbox_depth") === 0, bus);
    expect(valueOf(flushed, "messaging_nats_publish_failures_total")).toBe(0);
    nats.kill("SIGSTOP");
    expect((await post("while NATS is paused")).status).toBe(201);
    const failed = await scrapeUntil((s) => valueOf(s, "messaging_nats_publish_failures_total") >= 1, bus, 20000);
    expect(valueOf(failed, "messaging_nats_outbox_depth")).toBeGreaterThanOrEqual(1);
    nats.kill("SIGCONT");
    await scrapeUntil((s) => valueOf(s, "messaging_nats_outbox_depth") === 0, bus, 30000);
  }, 60000);
});
