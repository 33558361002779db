import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";
import { freePort, LineWatcher, terminate } from "../helpers/process.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

const MAIN = join(import.meta.dir, "..", "..", "src", "main.ts");

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
      const send = (text: string) =>
        fetch(`${base}/api/messaging/channels/${channel.id}/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-user-id": "user:admin" },
          body: JSON.stringify({ text }),
        });
      expect((await send("before reload")).status).toBe(201);
      const health = async () => (await (await fetch(`${base}/health`)).json()) as { live: Record<string, number> };
      const before = await health();
      expect(before.live).toMatchObject({ http_server: 1, sync_poller: 1, database: 1, actors: 1 });
      const pidsBefore = fresh ? await backendPids() : [];

      writeFileSync(entry, `import ${JSON.stringify(MAIN)}; // v2\n`);
      await out.waitFor((l) => l.includes("daarion-messaging listening"), 2);

      const after = await health();
      expect(after.live).toEqual({ http_server: 1, sync_poller: 1, database: 1, event_bus: 1, matrix_backend: 1, actors: 0 });
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
});
