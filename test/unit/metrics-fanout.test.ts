import { expect, test } from "bun:test";
import { ChannelFanout, CLOSE_SLOW_CONSUMER, type LiveSocket } from "../../src/realtime/fanout.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { parsePrometheus, valueOf } from "../helpers/prometheus.ts";

function fakeSocket(buffered: number) {
  const closes: number[] = [];
  const socket: LiveSocket = {
    send: () => 0,
    close: (code) => void closes.push(code ?? 1000),
    getBufferedAmount: () => buffered,
    subscribe: () => {},
    unsubscribe: () => {},
    readyState: 1,
  };
  return { socket, closes };
}

test("the fan-out counts a published frame once per subscriber, and each slow-consumer close", async () => {
  const metrics = new Metrics();
  const fanout = new ChannelFanout(1000, metrics);
  const published: string[] = [];
  fanout.attach((_topic, data) => void published.push(data));
  const quick = fakeSocket(0);
  const other = fakeSocket(10);
  const slow = fakeSocket(5000);
  for (const { socket } of [quick, other, slow]) fanout.subscribe("c1", socket);
  fanout.publish("c1", "frame-1");
  fanout.publish("c1", "frame-2");
  expect(published).toEqual(["frame-1", "frame-2"]);
  expect(slow.closes).toEqual([CLOSE_SLOW_CONSUMER]);
  const samples = parsePrometheus(await metrics.render({ actors: 0, mailboxDepths: [] }, async () => ({ outboxPending: 0, inboxDepth: 0, natsOutboxDepth: 0 })));
  expect(valueOf(samples, "messaging_ws_frames_sent_total")).toBe(4);
  expect(valueOf(samples, "messaging_ws_slow_consumer_closes_total")).toBe(1);
});
