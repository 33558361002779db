/**
 * `bun run cluster`: three instances in cluster mode on this machine, against the local
 * PostgreSQL and NATS, behind a tiny round-robin balancer (HTTP and WebSocket), so a developer
 * can watch channel ownership move (kill one; `GET /internal/cluster` on any of them).
 *
 *   bun run cluster [--instances 3] [--port 7100]
 *
 * The balancer listens on --port; the instances on the ports after it. DATABASE_URL and NATS_URL
 * default to the local servers (database daarion_cluster, created if missing); everything else
 * comes from the environment as for `bun run dev`. Ctrl-C stops the instances with SIGTERM.
 */
import postgres from "postgres";
import type { Subprocess } from "bun";
import { join } from "node:path";

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const count = option("instances", 3);
const balancerPort = option("port", 7100);
const databaseUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/daarion_cluster";
const natsUrl = process.env.NATS_URL || "nats://127.0.0.1:4222";
const main = join(import.meta.dir, "..", "src", "main.ts");

async function ensureDatabase(url: string) {
  const target = new URL(url);
  const name = target.pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  try {
    const [found] = await sql`select 1 from pg_database where datname = ${name}`;
    if (!found) await sql.unsafe(`create database "${name.replaceAll('"', '""')}"`);
  } finally {
    await sql.end();
  }
}

await ensureDatabase(databaseUrl);
const instances: { port: number; proc: Subprocess }[] = [];
for (let i = 1; i <= count; i++) {
  const port = balancerPort + i;
  const proc = Bun.spawn(["bun", main], {
    env: { ...process.env, CLUSTER: "on", INSTANCE_ID: `node-${i}`, PORT: String(port), DATABASE_URL: databaseUrl, NATS_URL: natsUrl },
    stdout: "inherit",
    stderr: "inherit",
  });
  instances.push({ port, proc });
}

let next = 0;
const pick = () => instances[next++ % instances.length]!.port;
type Link = { target: string; headers: Record<string, string>; upstream: WebSocket | null; queued: (string | Buffer)[] };
Bun.serve<Link>({
  port: balancerPort,
  hostname: "127.0.0.1",
  async fetch(request, server) {
    const url = new URL(request.url);
    const port = pick();
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      // Identity headers (X-User-Id in dev mode, the bearer subprotocol) travel on to the instance.
      const headers: Record<string, string> = {};
      for (const name of ["x-user-id", "authorization", "sec-websocket-protocol"]) {
        const value = request.headers.get(name);
        if (value) headers[name] = value;
      }
      const data: Link = { target: `ws://127.0.0.1:${port}${url.pathname}${url.search}`, headers, upstream: null, queued: [] };
      return server.upgrade(request, { data }) ? undefined : new Response("upgrade failed", { status: 400 });
    }
    try {
      return await fetch(`http://127.0.0.1:${port}${url.pathname}${url.search}`, { method: request.method, headers: request.headers, body: request.body, redirect: "manual" });
    } catch {
      return Response.json({ error: "UPSTREAM_UNAVAILABLE", message: `the instance on port ${port} did not answer` }, { status: 502 });
    }
  },
  websocket: {
    open(ws) {
      const link = ws.data;
      const upstream = new WebSocket(link.target, { headers: link.headers } as never);
      link.upstream = upstream;
      upstream.onopen = () => {
        for (const message of link.queued.splice(0)) upstream.send(message);
      };
      upstream.onmessage = (event) => ws.send(event.data as string);
      upstream.onclose = (event) => ws.close(event.code, event.reason);
    },
    message(ws, message) {
      const link = ws.data;
      if (link.upstream?.readyState === WebSocket.OPEN) link.upstream.send(message);
      else link.queued.push(message);
    },
    close(ws) {
      ws.data.upstream?.close();
    },
  },
});
console.log(`balancer on http://127.0.0.1:${balancerPort} -> instances on ${instances.map((i) => i.port).join(", ")}`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    for (const { proc } of instances) proc.kill("SIGTERM");
    await Promise.all(instances.map(({ proc }) => proc.exited));
    process.exit(0);
  });
}
