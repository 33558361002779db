import { expect, test } from "bun:test";
import { ChannelFanout, CLOSE_SLOW_CONSUMER, type LiveSocket } from "../../src/realtime/fanout.ts";

/** A subscriber that reads nothing: every frame published to its topic stays in its buffer. */
function stalledSocket() {
  const state = { buffered: 0, reads: 0, onTopic: false, closedAt: null as number | null, code: null as number | null };
  const socket: LiveSocket = {
    send: () => 0,
    close: (code) => {
      state.code = code ?? 1000;
      state.closedAt = state.buffered;
    },
    getBufferedAmount: () => {
      state.reads++;
      return state.buffered;
    },
    subscribe: () => void (state.onTopic = true),
    unsubscribe: () => void (state.onTopic = false),
    readyState: 1,
  };
  return { socket, state };
}

test("a stalled subscriber is cut off within a quarter of the limit past it, and the buffers are not read at every frame", () => {
  const limit = 64 * 1024;
  const fanout = new ChannelFanout(limit);
  const stalled = stalledSocket();
  const reader = stalledSocket();
  // The topic publish: the stalled socket keeps what it is sent; the reader reads at once.
  fanout.attach((_topic, data) => {
    if (stalled.state.onTopic) stalled.state.buffered += data.length;
  });
  fanout.subscribe("c1", stalled.socket);
  fanout.subscribe("c1", reader.socket);
  const frame = "x".repeat(500);
  let frames = 0;
  while (stalled.state.code === null && frames < 10_000) {
    fanout.publish("c1", frame);
    frames++;
  }
  expect(stalled.state.code).toBe(CLOSE_SLOW_CONSUMER);
  // Closed once over the limit, before a quarter of the limit more had piled up.
  expect(stalled.state.closedAt!).toBeGreaterThan(limit);
  expect(stalled.state.closedAt!).toBeLessThanOrEqual(limit + limit / 4);
  // Nothing reached it after it was taken off the topic.
  expect(stalled.state.buffered).toBe(stalled.state.closedAt!);
  // Far fewer looks than frames: the fast path does not visit every subscriber.
  expect(frames).toBeGreaterThan(130);
  expect(reader.state.reads).toBeLessThan(frames / 5);
  expect(reader.state.reads).toBeGreaterThan(0);
});

test("a subscriber that joins is looked at before the next frame", () => {
  const fanout = new ChannelFanout(4096);
  const published: string[] = [];
  fanout.attach((_topic, data) => void published.push(data));
  fanout.publish("c1", "nobody yet");
  const full = stalledSocket();
  full.state.buffered = 10_000;
  fanout.subscribe("c1", full.socket);
  fanout.publish("c1", "first frame after the join");
  expect(full.state.code).toBe(CLOSE_SLOW_CONSUMER);
  expect(published).toEqual([]);
});
