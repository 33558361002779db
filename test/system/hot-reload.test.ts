import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";
import { freePort, LineWatcher, terminate } from "../helpers/process.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

const MAIN = join(import.meta.dir, "..", "..", "src", "main.ts");

/** `bun --hot` on an entry file that imports main.ts; writeEntry(n) changes it, which reloads. */
function startHot(dir: string, env: Record<string, string>) {
  const entry = join(dir, "entry.ts");
  const writeEntry = (version: number, extra = "") => writeFileSync(entry, `import ${JSON.stringify(MAIN)}; // v${version}\n${extra}`);
  writeEntry(1);
  const proc = Bun.spawn(["bun", "--hot", entry], {
    env: { ...process.env, HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { proc, out: new LineWatcher(proc.stdout), err: new LineWatcher(proc.stderr), writeEntry };
}

/** Resident memory of a process (Linux), or null where /proc is not there. */
function rssBytes(pid: number): number | null {
  const status = `/proc/${pid}/status`;
  if (!existsSync(status)) return null;
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(status, "utf8"))?.[1];
  return kb ? Number(kb) * 1024 : null;
}

describe("bun --hot", () => {
  const dir = mkdtempSync(join(tmpdir(), "daarion-hot-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }), 60000);

  test("a reload leaves exactly one server, poller, actor set and database pool", async () => {
    const entry = join(dir, "entry.ts");
    writeFileSync(entry, `import ${JSON.stringify(MAIN)}; // v1\n`);
    const fresh = databaseUrl ? await freshPostgresDatabase("daarion_hot") : null;
    const port = await freePort();
    const proc = Bun.spawn(["bun", "--hot", entry], {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        DATA_DIR: join(dir, "data"),
        DATABASE_URL: fresh?.url ?? "",
        NATS_URL: process.env.NATS_URL ?? "",
        LOG_LEVEL: "info",
      },
      stdout: "pipe",
      stderr: "inherit",
    });
    const out = new LineWatcher(proc.stdout);
    const base = `http://127.0.0.1:${port}`;
    const admin = postgres(fresh?.url ?? "postgres://unused", { max: 1, onnotice: () => {} });
    const backendPids = async () =>
      (await admin`select pid from pg_stat_activity where datname = current_database() and application_name = 'daarion-messaging'`).map(
        (r) => r.pid as number,
      );
    try {
      await out.waitFor((l) => l.includes("daarion-messaging listening"));
      const create = await fetch(`${base}/api/messaging/channels`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-user-id": "user:admin" },
        body: JSON.stringify({ slug: `hot-${Date.now().toString(36)}`, name: "Hot", microdao_id: "microdao:daarion", visibility: "public" }),
      });
      expect(create.status).toBe(201);
      const channel = (await create.json()) as { id: string };
      // A fresh connection per request: a reload closes the old server's connections, and a
      // POST on one the client pool still held (its close not read yet) would be reset.
      const send = (text: string) =>
        fetch(`${base}/api/messaging/channels/${channel.id}/messages`, {
          keepalive: false,
          method: "POST",
          headers: { "content-type": "application/json", "x-user-id": "user:admin" },
          body: JSON.stringify({ text }),
        });
      expect((await send("before reload")).status).toBe(201);
      const health = async () => (await (await fetch(`${base}/health`, { keepalive: false })).json()) as { live: Record<string, number> };
      const before = await health();
      expect(before.live).toMatchObject({ http_server: 1, sync_poller: 1, database: 1, actors: 1 });
      const pidsBefore = fresh ? await backendPids() : [];

      writeFileSync(entry, `import ${JSON.stringify(MAIN)}; // v2\n`);
      await out.waitFor((l) => l.includes("daarion-messaging listening"), 2);

      const after = await health();
      expect(after.live).toEqual({ http_server: 1, sync_poller: 1, database: 1, event_bus: 1, matrix_backend: 1, preview_worker: 1, actors: 0 });
      if (fresh) {
        const pidsAfter = await backendPids();
        expect(pidsAfter.filter((pid) => pidsBefore.includes(pid))).toEqual([]);
      }

      // One server answers, one actor set orders, and each frame comes once.
      const inbox = await WsInbox.open(`ws://127.0.0.1:${port}/ws/messaging/${channel.id}?user_id=user:watcher`);
      const res = await send("after reload");
      expect(res.status).toBe(201);
      expect(((await res.json()) as { seq: number }).seq).toBe(2);
      const frame = await inbox.nextJson();
      expect(frame).toMatchObject({ type: "message.created", seq: 2 });
      inbox.ws.send("ping");
      expect(await inbox.next()).toBe("pong");
      inbox.close();
      expect((await health()).live.actors).toBe(1);
    } finally {
      await terminate(proc);
      await admin.end();
      await fresh?.drop();
    }
    await out.waitFor((l) => l.includes('"msg":"stopped"'), 2);
  }, 60000);

  test("the embedded database (PGlite and its socket server) is kept across reloads, not reopened each time", async () => {
    const hotDir = mkdtempSync(join(dir, "embedded-"));
    const port = await freePort();
    const { proc, out, writeEntry } = startHot(hotDir, { PORT: String(port), DATA_DIR: join(hotDir, "data"), DATABASE_URL: "", NATS_URL: "" });
    const base = `http://127.0.0.1:${port}`;
    const headers = { "content-type": "application/json", "x-user-id": "user:admin" };
    const listening = (l: string) => l.includes("daarion-messaging listening");
    try {
      await out.waitFor(listening);
      const create = await fetch(`${base}/api/messaging/channels`, {
        method: "POST",
        headers,
        body: JSON.stringify({ slug: "kept", name: "Kept", microdao_id: "microdao:daarion", visibility: "public" }),
      });
      expect(create.status).toBe(201);
      const channel = (await create.json()) as { id: string };
      const send = async (text: string) => {
        // A fresh connection per request, as above: a reload closes the old server's connections.
        const res = await fetch(`${base}/api/messaging/channels/${channel.id}/messages`, { keepalive: false, method: "POST", headers, body: JSON.stringify({ text }) });
        expect(res.status).toBe(201);
        return ((await res.json()) as { seq: number }).seq;
      };
      expect(await send("before reloads")).toBe(1);

      const reloads = 6;
      let rssAfterFirstReload: number | null = null;
      for (let n = 1; n <= reloads; n++) {
        writeEntry(n + 1);
        await out.waitFor(listening, n + 1, 30000);
        if (n === 1) rssAfterFirstReload = rssBytes(proc.pid);
      }
      const rssAfterLastReload = rssBytes(proc.pid);

      expect(out.lines.filter((l) => l.includes('"msg":"embedded database started"'))).toHaveLength(1);
      // At least: one write to the entry file may reach the watcher as two changes.
      expect(out.lines.filter((l) => l.includes('"msg":"embedded database kept across reload"')).length).toBeGreaterThanOrEqual(reloads);
      expect(await send("after reloads")).toBe(2);
      if (rssAfterFirstReload !== null && rssAfterLastReload !== null) {
        // Reopening PGlite cost about 40 MB a reload; what is left is garbage-collector noise.
        expect(rssAfterLastReload - rssAfterFirstReload).toBeLessThan(20 * 1024 * 1024 * (reloads - 1));
      }
    } finally {
      await terminate(proc);
    }
    // Closed on the way out, lock and all: a new process opens the same directory.
    expect(existsSync(join(hotDir, "data", "daarion-messaging.lock"))).toBe(false);
  }, 120000);

  test("an unhandled rejection (a module with a syntax error) is logged as pino JSON with the error's file and line", async () => {
    const hotDir = mkdtempSync(join(dir, "rejection-"));
    const broken = join(hotDir, "broken.ts");
    writeFileSync(broken, "export const value = ;\n");
    const { proc, out, err, writeEntry } = startHot(hotDir, { PORT: "0", DATA_DIR: ":memory:", DATABASE_URL: "", NATS_URL: "" });
    try {
      await out.waitFor((l) => l.includes("daarion-messaging listening"));
      writeEntry(2, `void import(${JSON.stringify(broken)});\n`);
      const [line] = await out.waitFor((l) => l.includes("unhandled rejection")).catch((e) => {
        throw new Error(`${(e as Error).message}\nstderr:\n${err.lines.join("\n")}`);
      });
      const record = JSON.parse(line!) as { level: number; msg: string; err: { message: string; position?: { file: string; line: number; column: number } } };
      expect(record).toMatchObject({ level: 50, msg: "unhandled rejection" });
      expect(record.err.message).toContain("Unexpected");
      expect(record.err.position).toMatchObject({ file: broken, line: 1, column: expect.any(Number) });
    } finally {
      await terminate(proc);
    }
  }, 60000);
});
