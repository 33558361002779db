import { join } from "node:path";
import type { Subprocess } from "bun";
import { LineWatcher } from "../helpers/process.ts";
import { synapse, synapseServiceEnv } from "../helpers/synapse.ts";

/** What the fault suites share: the service as a child process they can kill -9, and Matrix-side counts. */
export const REPO = join(import.meta.dir, "..", "..");
const MAIN = join(REPO, "src", "main.ts");

/** Starts `bun src/main.ts` on Synapse with these settings and waits until it listens. */
export async function startServiceProcess(env: Record<string, string>, base: Record<string, string | undefined> = process.env): Promise<Subprocess> {
  const proc = Bun.spawn(["bun", MAIN], {
    cwd: REPO,
    env: {
      ...base,
      ...synapseServiceEnv({
        HOST: "127.0.0.1",
        LOG_LEVEL: "info",
        MATRIX_RETRY_MAX_MS: "1000",
        SEND_CONFIRM_TIMEOUT_MS: "1500",
        SYNC_TIMEOUT_MS: "2000",
        RATE_LIMIT_USER_PER_MIN: "0",
        RATE_LIMIT_CHANNEL_PER_MIN: "0",
        RATE_LIMIT_READ_PER_MIN: "0",
        ...env,
      }),
    },
    stdout: "pipe",
    stderr: "inherit",
  });
  await new LineWatcher(proc.stdout).waitFor((l) => l.includes("daarion-messaging listening"), 1, 60000);
  return proc;
}

/** Bodies of a room's m.room.message events, read as the sync user. */
export async function matrixBodies(roomId: string): Promise<string[]> {
  const bodies: string[] = [];
  let from: string | null = null;
  for (let page = 0; page < 50; page++) {
    const url = new URL(`${synapse!.url}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages`);
    url.searchParams.set("dir", "b");
    url.searchParams.set("limit", "100");
    url.searchParams.set("user_id", `@daarion-sync:${synapse!.serverName}`);
    url.searchParams.set("filter", JSON.stringify({ types: ["m.room.message"] }));
    if (from) url.searchParams.set("from", from);
    const res = (await (await fetch(url, { headers: { authorization: `Bearer ${synapse!.asToken}` } })).json()) as {
      chunk: Array<{ content: { body?: string } }>;
      end?: string;
    };
    for (const e of res.chunk) if (e.content.body) bodies.push(e.content.body);
    if (!res.end || res.chunk.length === 0) break;
    from = res.end;
  }
  return bodies;
}

/** How many of `expected` were seen, how many not, and how many were seen more than once. */
export function tally(expected: string[], seen: string[]) {
  const counts = new Map<string, number>();
  for (const s of seen) counts.set(s, (counts.get(s) ?? 0) + 1);
  const missing = expected.filter((e) => !counts.has(e)).length;
  const duplicated = [...counts.values()].filter((n) => n > 1).length;
  return { count: expected.length - missing, missing, duplicated };
}
