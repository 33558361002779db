import { expect, test } from "bun:test";
import { Writable } from "node:stream";
import { join } from "node:path";
import { createLogger } from "../../src/log.ts";
import { LineWatcher, terminate } from "../helpers/process.ts";

const root = join(import.meta.dir, "..", "..");

/** A destination that keeps what the logger writes. */
function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, text: () => chunks.join("") };
}
const plain = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");

test("on a terminal in dev, records are pretty lines with a level name, not JSON", () => {
  const out = capture();
  const log = createLogger("info", { isTTY: true, production: false, destination: out.stream });
  log.info({ channel_id: "c1", req: { headers: { authorization: "Bearer secret-token" } } }, "channel created");
  const text = plain(out.text());
  expect(text).toContain("INFO");
  expect(text).toContain("channel created");
  expect(text).toContain("channel_id");
  expect(text).not.toContain("secret-token");
  expect(() => JSON.parse(text.trim())).toThrow();
});

test("without a terminal, or in production, records are JSON lines", () => {
  for (const output of [{ isTTY: false, production: false }, { isTTY: true, production: true }]) {
    const out = capture();
    createLogger("info", { ...output, destination: out.stream }).info({ channel_id: "c1" }, "channel created");
    const record = JSON.parse(out.text().trim());
    expect(record).toMatchObject({ level: 30, msg: "channel created", channel_id: "c1", service: "daarion-messaging" });
  }
});

test("the service started with stdout piped logs JSON", async () => {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), PORT: "0", HOST: "127.0.0.1", DATA_DIR: ":memory:", LOG_LEVEL: "info" };
  for (const key of ["DATABASE_URL", "NATS_URL", "MATRIX_HOMESERVER_URL", "NODE_ENV", "AUTH_MODE"]) delete env[key];
  const proc = Bun.spawn(["bun", join(root, "src", "main.ts")], { cwd: root, env, stdout: "pipe", stderr: "pipe" });
  try {
    const lines = new LineWatcher(proc.stdout);
    const [listening] = await lines.waitFor((l) => l.includes("daarion-messaging listening"));
    expect(JSON.parse(listening!)).toMatchObject({ level: 30, msg: "daarion-messaging listening" });
    for (const line of lines.lines) expect(() => JSON.parse(line)).not.toThrow();
  } finally {
    await terminate(proc);
  }
}, 30_000);
