import type { Subprocess } from "bun";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { LineWatcher } from "../helpers/process.ts";

export const MAIN = join(import.meta.dir, "..", "..", "src", "main.ts");

/** Only what the child needs, so the developer's own DATABASE_URL or NATS_URL stays out. */
const baseEnv = () => ({ PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp" });

/** Runs `bun src/main.ts` until it exits (a start-up that is refused), killed after 20 s if it does not. */
export async function runMainToExit(env: Record<string, string>): Promise<{ code: number; stderr: string; stdout: string }> {
  const proc = Bun.spawn(["bun", MAIN], { env: { ...baseEnv(), ...env }, stdout: "pipe", stderr: "pipe", timeout: 20000, killSignal: "SIGKILL" });
  const [code, stderr, stdout] = await Promise.all([proc.exited, new Response(proc.stderr).text(), new Response(proc.stdout).text()]);
  return { code, stderr, stdout };
}

export interface MainProcess {
  proc: Subprocess<"ignore", "pipe", "inherit">;
  out: LineWatcher;
  port: number;
}

/** Starts `bun src/main.ts` (PORT=0 unless told) and waits for its "listening" line. */
export async function startMain(env: Record<string, string>): Promise<MainProcess> {
  const proc = Bun.spawn(["bun", MAIN], { env: { ...baseEnv(), PORT: "0", ...env }, stdout: "pipe", stderr: "inherit" });
  const out = new LineWatcher(proc.stdout);
  try {
    const [listening] = await out.waitFor((l) => l.includes("daarion-messaging listening"));
    return { proc, out, port: (JSON.parse(listening!) as { port: number }).port };
  } catch (err) {
    proc.kill("SIGKILL");
    throw err;
  }
}

/** Whether anything answers /health at this address. */
export async function answers(host: string, port: number): Promise<boolean> {
  try {
    return (await fetch(`http://${host}:${port}/health`, { signal: AbortSignal.timeout(3000) })).ok;
  } catch {
    return false;
  }
}

/**
 * An address of this machine that is not 127.0.0.1: a network interface's, or else 127.0.0.2
 * (Linux routes all of 127/8 to the loopback interface).
 */
export function otherAddressOfThisMachine(): string {
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal);
  return external?.address ?? "127.0.0.2";
}
