import { describe, expect, test } from "bun:test";
import { Metrics } from "../../src/metrics/metrics.ts";
import { instrumentCalls, outcomeOf } from "../../src/metrics/instrument.ts";
import { MatrixError } from "../../src/matrix/port.ts";
import { parsePrometheus, samplesOf, valueOf } from "../helpers/prometheus.ts";

const noQueues = async () => ({ outboxPending: 0, inboxDepth: 0, natsOutboxDepth: 0 });
const scrape = async (metrics: Metrics) => parsePrometheus(await metrics.render({ actors: 0, mailboxDepths: [] }, noQueues));

describe("metrics", () => {
  test("a second registry in the same process (a hot reload, a second app) registers afresh", async () => {
    const first = new Metrics();
    const second = new Metrics();
    first.batchCommitted(3);
    expect(valueOf(await scrape(first), "messaging_channel_send_batch_size_count")).toBe(1);
    expect(valueOf(await scrape(second), "messaging_channel_send_batch_size_count")).toBe(0);
  });

  test("the Matrix outcome is the status class Matrix answered with, or error when none came", () => {
    expect(outcomeOf(new MatrixError("M_FORBIDDEN", "no", 403))).toBe("4xx");
    expect(outcomeOf(new MatrixError("M_UNKNOWN", "down", 502))).toBe("5xx");
    expect(outcomeOf(new Error("connection refused"))).toBe("error");
  });

  test("the decorator times every async method under its name and leaves the rest alone", async () => {
    const calls: Array<[string, string]> = [];
    const port = {
      kind: "test",
      async sendEvent() {
        return this.kind;
      },
      async join() {
        throw new MatrixError("M_FORBIDDEN", "not invited", 403);
      },
      serverNameOf: () => "example.org",
    };
    const wrapped = instrumentCalls(port, (operation, outcome, seconds) => {
      expect(seconds).toBeGreaterThanOrEqual(0);
      calls.push([operation, outcome]);
    });
    expect(wrapped.kind).toBe("test");
    expect(await wrapped.sendEvent()).toBe("test");
    await expect(wrapped.join()).rejects.toThrow("not invited");
    expect(wrapped.serverNameOf()).toBe("example.org");
    expect(calls).toEqual([
      ["sendEvent", "ok"],
      ["join", "4xx"],
    ]);
  });

  test("scrape-time gauges take the sampled values; mailbox depth is summed and maxed, never per channel", async () => {
    const metrics = new Metrics();
    const samples = parsePrometheus(await metrics.render({ actors: 3, mailboxDepths: [2, 5, 0] }, async () => ({ outboxPending: 4, inboxDepth: 7, natsOutboxDepth: 1 })));
    expect(valueOf(samples, "messaging_channel_actors")).toBe(3);
    expect(valueOf(samples, "messaging_channel_mailbox_depth", { aggregate: "sum" })).toBe(7);
    expect(valueOf(samples, "messaging_channel_mailbox_depth", { aggregate: "max" })).toBe(5);
    expect(valueOf(samples, "messaging_outbox_pending_messages")).toBe(4);
    expect(valueOf(samples, "messaging_matrix_inbox_depth")).toBe(7);
    expect(valueOf(samples, "messaging_nats_outbox_depth")).toBe(1);
  });

  test("the process metrics that work under Bun are there; the ones Bun leaves blank are not", async () => {
    const samples = await scrape(new Metrics());
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"]) {
      expect(samplesOf(samples, name).length).toBe(1);
    }
    expect(valueOf(samples, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(samples.filter((s) => s.name.startsWith("nodejs_active_") || s.name.startsWith("nodejs_heap_space_") || s.name.startsWith("nodejs_gc_"))).toEqual([]);
  });
});
