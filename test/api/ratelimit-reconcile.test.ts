import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import { startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";
import { freshPostgresDatabase, serviceMissing } from "../helpers/services.ts";
import { createLogger } from "../../src/log.ts";

// Reads only: 10 at once, then one a minute (so refill is negligible within a test); the other buckets off.
const BURST = 10;
const LIMITS = {
  RATE_LIMIT_READ_PER_MIN: "1",
  RATE_LIMIT_READ_BURST: String(BURST),
  RATE_LIMIT_USER_PER_MIN: "0",
  RATE_LIMIT_CHANNEL_PER_MIN: "0",
  RATE_LIMIT_ADDRESS_PER_MIN: "0",
  // Rounds on the timer, as in production, only faster.
  RATE_LIMIT_RECONCILE_MS: "50",
};

/** The promise, or a failure after `ms`: every wait in this file is for an event, bounded. */
const within = <T>(promise: Promise<T>, ms = 5000): Promise<T> =>
  Promise.race([promise, Bun.sleep(ms).then(() => Promise.reject(new Error(`nothing happened within ${ms} ms`)))]);

const read = (server: TestServer, caller: string) => server.api("/api/messaging/channels", { as: caller });
const readStatuses = async (server: TestServer, caller: string, n: number) => {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) statuses.push((await read(server, caller)).status);
  return statuses;
};
const times = (n: number, status: number) => Array.from({ length: n }, () => status);

/** The service's log lines, parsed, as it writes them. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, log: createLogger("info", { isTTY: false, destination }) };
}

describe.skipIf(serviceMissing("DATABASE_URL"))("rate limits across instances (two apps on one PostgreSQL database)", () => {
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let a: TestServer;
  let b: TestServer;
  const aLog = capturedLog();
  beforeAll(async () => {
    db = await freshPostgresDatabase();
    a = await startTestServer({ ...LIMITS, DATABASE_URL: db.url }, { log: aLog.log });
    b = await startTestServer({ ...LIMITS, DATABASE_URL: db.url });
  }, 60000);
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.drop();
  }, 60000);
  const tokensInDatabase = async (caller: string) => {
    const [row] = await a.app.deps.sql`select tokens from rate_limit_buckets where key = ${`user-read:${caller}`}`;
    return row ? Number(row.tokens) : null;
  };

  test("what one instance spends, the other refuses once both have had a round: one budget", async () => {
    const caller = `user:rl-shared-${uniqueSlug()}`;
    expect(await readStatuses(a, caller, BURST)).toEqual(times(BURST, 200));
    expect(await within(a.app.rateLimits.nextRound())).toBe(true);
    // b never served this caller: its round reads what a sent.
    expect(await within(b.app.rateLimits.nextRound())).toBe(true);
    const refused = await read(b, caller);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ error: "RATE_LIMITED", message: expect.any(String), request_id: expect.any(String) });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get("x-ratelimit-limit")).toBe(String(BURST));
    expect(refused.headers.get("x-ratelimit-remaining")).toBe("0");
    expect((await read(a, caller)).status).toBe(429);
  });

  test("spending on both at once stays within the bound (2 × burst), the excess is debt, and both refuse after a round", async () => {
    const caller = `user:rl-both-${uniqueSlug()}`;
    const statuses = await Promise.all(Array.from({ length: 4 * BURST }, (_, i) => read(i % 2 ? a : b, caller).then((r) => r.status)));
    const admitted = statuses.filter((s) => s === 200).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect(admitted).toBeGreaterThanOrEqual(BURST);
    // N × (burst + rate × T) with N = 2; at one token a minute the refill adds nothing here.
    expect(admitted).toBeLessThanOrEqual(2 * BURST);
    await within(a.app.rateLimits.nextRound());
    await within(b.app.rateLimits.nextRound());
    expect((await read(a, caller)).status).toBe(429);
    expect((await read(b, caller)).status).toBe(429);
    // Every admitted read is counted once; the level went below zero by the excess, at most one burst.
    const tokens = (await tokensInDatabase(caller))!;
    expect(tokens).toBeGreaterThanOrEqual(-BURST);
    expect(tokens).toBeCloseTo(BURST - admitted, 0);
  });

  test("a new instance learns at its first round every bucket another has spent", async () => {
    const caller = `user:rl-late-${uniqueSlug()}`;
    expect(await readStatuses(a, caller, BURST)).toEqual(times(BURST, 200));
    await within(a.app.rateLimits.nextRound());
    const late = await startTestServer({ ...LIMITS, DATABASE_URL: db.url });
    try {
      expect(await within(late.app.rateLimits.nextRound())).toBe(true);
      expect((await read(late, caller)).status).toBe(429);
    } finally {
      await late.stop();
    }
  });

  test("a stopping instance sends what it took since its last round", async () => {
    const caller = `user:rl-stop-${uniqueSlug()}`;
    // No round on the timer during this test: only the one stop() runs.
    const leaving = await startTestServer({ ...LIMITS, RATE_LIMIT_RECONCILE_MS: "60000", DATABASE_URL: db.url });
    try {
      expect(await readStatuses(leaving, caller, 4)).toEqual(times(4, 200));
    } finally {
      await leaving.stop();
    }
    expect(await tokensInDatabase(caller)).toBeCloseTo(BURST - 4, 1);
  });

  test("a database hiccup: rounds fail, requests are still decided from memory (none fails), and every token taken reaches PostgreSQL once it answers", async () => {
    const caller = `user:rl-hiccup-${uniqueSlug()}`;
    expect(await readStatuses(a, caller, 3)).toEqual(times(3, 200));
    // The limiter's table is gone for a while (the rest of the database answers as usual).
    await a.app.deps.sql`alter table rate_limit_buckets rename to rate_limit_buckets_away`;
    try {
      expect(await within(a.app.rateLimits.nextRound())).toBe(false);
      expect(await readStatuses(a, caller, BURST - 3 + 2)).toEqual([...times(BURST - 3, 200), 429, 429]);
      expect(await within(a.app.rateLimits.nextRound())).toBe(false);
    } finally {
      await a.app.deps.sql`alter table rate_limit_buckets_away rename to rate_limit_buckets`;
    }
    expect(await within(a.app.rateLimits.nextRound())).toBe(true);
    // All ten reads, sent once: none lost in the failed rounds, none sent twice.
    const tokens = await tokensInDatabase(caller);
    expect(tokens).not.toBeNull();
    expect(tokens!).toBeGreaterThanOrEqual(0);
    expect(tokens).toBeLessThan(0.5);
    // One warning for the whole outage, one line when it is over.
    const messages = aLog.lines.map((l) => l.msg as string);
    expect(messages.filter((m) => m.startsWith("could not reconcile rate limits"))).toHaveLength(1);
    expect(messages.filter((m) => m === "rate limits reconciled with the database again")).toHaveLength(1);
  });
});

describe("rate limits on the embedded default (PGlite, one process)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...LIMITS, DATA_DIR: ":memory:" });
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  test("the limit is enforced from memory and the rounds reach PGlite", async () => {
    expect((await (await server.api("/health")).json()).database).toBe("pglite");
    const caller = `user:rl-embedded-${uniqueSlug()}`;
    expect(await readStatuses(server, caller, BURST + 1)).toEqual([...times(BURST, 200), 429]);
    expect(await within(server.app.rateLimits.nextRound())).toBe(true);
    const [row] = await server.app.deps.sql`select tokens from rate_limit_buckets where key = ${`user-read:${caller}`}`;
    expect(Number(row!.tokens)).toBeLessThan(0.5);
  });
});
