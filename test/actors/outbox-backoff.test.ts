import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { MatrixError, type MatrixBackend } from "../../src/matrix/port.ts";

setDefaultTimeout(30_000);

/** Refuses every message send as unreachable while `down`, noting when each room's attempts came. */
class DownHomeserver {
  down = false;
  readonly attempts = new Map<string, number[]>();
  private waiters: Array<() => void> = [];

  wrap = (inner: MatrixBackend): MatrixBackend => {
    const note = (roomId: string) => {
      this.attempts.set(roomId, [...(this.attempts.get(roomId) ?? []), performance.now()]);
      for (const wake of this.waiters.splice(0)) wake();
    };
    return new Proxy(inner, {
      get: (target, prop, receiver) => {
        if (prop === "sendEvents") {
          return async (roomId: string, events: Parameters<MatrixBackend["sendEvents"]>[1]) => {
            note(roomId);
            if (this.down) return { eventIds: [], error: new MatrixError("M_UNREACHABLE", "homeserver unreachable", 502) };
            return target.sendEvents(roomId, events);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };

  /** Resolves once every room has been tried `n` times. */
  async triedTimes(rooms: string[], n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!rooms.every((r) => (this.attempts.get(r)?.length ?? 0) >= n)) {
      if (Date.now() > deadline) throw new Error("the outbox did not retry in time");
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.max(1, deadline - Date.now()));
      });
    }
  }
}

const homeserver = new DownHomeserver();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ SEND_CONFIRM_TIMEOUT_MS: "50" }, { wrapMatrix: homeserver.wrap });
}, 60000);
afterAll(async () => {
  homeserver.down = false;
  await server?.stop();
}, 60000);

describe("outbox backoff", () => {
  test("channels whose sends failed together retry at different times, none at once", async () => {
    const channels = await Promise.all(Array.from({ length: 8 }, () => createChannel(server, "user:admin")));
    const rooms = channels.map((c) => c.matrix_room_id);
    homeserver.down = true;
    const answers = await Promise.all(
      channels.map((c) => server.api(`/api/messaging/channels/${c.id}/messages`, { method: "POST", as: "user:admin", json: { text: "while down" } })),
    );
    expect(answers.map((r) => r.status)).toEqual(channels.map(() => 202));
    await homeserver.triedTimes(rooms, 2);
    const firstRetryWaits = rooms.map((r) => homeserver.attempts.get(r)![1]! - homeserver.attempts.get(r)![0]!);
    // The first retry waits between half the 500 ms ceiling and the ceiling (plus scheduling):
    // never immediate, and not all the same 500 ms, so a homeserver that comes back is not
    // hit by every channel at the same instant.
    for (const wait of firstRetryWaits) expect(wait).toBeGreaterThanOrEqual(245);
    expect(Math.min(...firstRetryWaits)).toBeLessThan(450);
    expect(Math.max(...firstRetryWaits) - Math.min(...firstRetryWaits)).toBeGreaterThan(30);
  });
});
