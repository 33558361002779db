import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../helpers/process.ts";
import { startMain, type MainProcess } from "./main-process.ts";

export const LOADGEN = "user:loadgen";
const H = { "content-type": "application/json", "x-user-id": LOADGEN };

/** A NATS server with JetStream of the suite's own, so it can be restarted (its store kept). */
export class PrivateNats {
  private proc: Subprocess | null = null;
  readonly dir = mkdtempSync(join(tmpdir(), "cluster-nats-"));
  constructor(readonly port: number) {}
  static async start(): Promise<PrivateNats> {
    const nats = new PrivateNats(await freePort());
    await nats.up();
    return nats;
  }
  get url() {
    return `nats://127.0.0.1:${this.port}`;
  }
  async up(): Promise<void> {
    this.proc = Bun.spawn(["/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.dir], { stdout: "ignore", stderr: "pipe" });
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const socket = await Bun.connect({ hostname: "127.0.0.1", port: this.port, socket: { data() {} } });
        socket.end();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error("private NATS did not start");
        await Bun.sleep(50);
      }
    }
  }
  async down(): Promise<void> {
    this.proc?.kill("SIGTERM");
    await this.proc?.exited;
    this.proc = null;
  }
  async stop(): Promise<void> {
    await this.down();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Instance {
  name: string;
  main: MainProcess;
  url: string;
  alive: boolean;
  /** Requests in flight to it: a balancer gives up on them when the instance is taken out (paused, killed). */
  inflight: Set<AbortController>;
}

/** The cluster's instances, started and restarted with the same environment. */
export class ClusterUnderTest {
  readonly instances: Instance[] = [];
  constructor(private readonly env: Record<string, string>) {}

  async start(name: string): Promise<Instance> {
    const main = await startMain({ ...this.env, INSTANCE_ID: name });
    const instance: Instance = { name, main, url: `http://127.0.0.1:${main.port}`, alive: true, inflight: new Set() };
    const i = this.instances.findIndex((x) => x.name === name);
    if (i >= 0) this.retired.push(this.instances[i]!);
    if (i >= 0) this.instances[i] = instance;
    else this.instances.push(instance);
    await until(async () => (await fetch(`${instance.url}/ready`).catch(() => null))?.status === 200, 20_000, `${name} to be ready`);
    return instance;
  }

  live(): Instance[] {
    return this.instances.filter((i) => i.alive);
  }

  /** The instance that owns the channel, as a live instance sees it. */
  async ownerOf(channelId: string): Promise<Instance | null> {
    for (const instance of this.live()) {
      const body = (await (await fetch(`${instance.url}/internal/cluster?channel_id=${channelId}`)).json()) as { channel?: { owner: string | null } };
      const owner = body.channel?.owner;
      if (owner) return this.instances.find((i) => owner.startsWith(`${i.name}-`) && i.alive) ?? null;
    }
    return null;
  }

  kill(instance: Instance, signal: NodeJS.Signals | number = "SIGKILL"): void {
    instance.main.proc.kill(signal);
    if (signal === "SIGKILL" || signal === "SIGSTOP") this.takeOut(instance);
    if (signal === "SIGTERM") instance.alive = false;
  }

  /** Out of the balancer's rotation; what waits on it is retried elsewhere (with its key). */
  takeOut(instance: Instance): void {
    instance.alive = false;
    for (const controller of instance.inflight) controller.abort();
    instance.inflight.clear();
  }

  async exited(instance: Instance): Promise<number> {
    const code = await instance.main.proc.exited;
    if (code !== 0) console.log(`${instance.name} exited with ${code}; its last lines:\n${instance.main.out.lines.slice(-40).join("\n")}`);
    return code;
  }

  private readonly retired: Instance[] = [];

  /** Every instance stopped: a paused one is resumed first, and one that does not stop within 20 s is killed. */
  async stop(): Promise<void> {
    for (const instance of this.instances) {
      instance.main.proc.kill("SIGCONT");
      instance.main.proc.kill("SIGTERM");
    }
    await Promise.all(
      this.instances.map(async (i) => {
        const timer = setTimeout(() => i.main.proc.kill("SIGKILL"), 20_000);
        await i.main.proc.exited;
        clearTimeout(timer);
      }),
    );
    // For a failure's post-mortem: CLUSTER_TEST_LOGS=dir keeps every instance's log lines.
    const dir = process.env.CLUSTER_TEST_LOGS;
    if (dir) for (const [i, instance] of [...this.retired, ...this.instances].entries()) await Bun.write(join(dir, `${instance.name}-${i}.log`), instance.main.out.lines.join("\n"));
  }
}

export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

export async function createChannel(url: string, slug: string): Promise<string> {
  const res = await fetch(`${url}/api/messaging/channels`, { method: "POST", headers: H, body: JSON.stringify({ name: slug, slug, microdao_id: "microdao:cluster", visibility: "public" }) });
  if (res.status !== 201) throw new Error(`channel creation: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export interface SentMessage {
  key: string;
  text: string;
  channelId: string;
  phase: string;
  accepted: boolean;
  startedAt: number;
  acceptedAt: number;
  attempts: number;
  statuses: number[];
}

/**
 * Senders that post to every live instance in turn, each message with its own Idempotency-Key,
 * and retry a message (same key, next instance) on a 5xx or a broken connection until it is
 * accepted or a minute has gone by.
 */
export class Load {
  readonly sent: SentMessage[] = [];
  phase = "warm-up";
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private turn = 0;
  /** Per channel, when the last message was accepted (for failover times). */
  readonly lastAccepted = new Map<string, number>();

  constructor(
    private readonly cluster: ClusterUnderTest,
    channels: string[],
    sendersPerChannel: number,
  ) {
    for (const channelId of channels) for (let s = 0; s < sendersPerChannel; s++) this.loops.push(this.sender(channelId, s));
  }

  private async sender(channelId: string, index: number): Promise<void> {
    let n = 0;
    while (this.running) {
      const key = `${channelId}:${index}:${n++}`;
      const message: SentMessage = { key, text: `${this.phase} ${key}`, channelId, phase: this.phase, accepted: false, startedAt: Date.now(), acceptedAt: 0, attempts: 0, statuses: [] };
      this.sent.push(message);
      await this.deliver(message);
    }
  }

  private async deliver(message: SentMessage): Promise<void> {
    const giveUp = Date.now() + 60_000;
    while (Date.now() < giveUp) {
      const live = this.cluster.live();
      const instance = live[this.turn++ % Math.max(1, live.length)];
      if (!instance) {
        await Bun.sleep(50);
        continue;
      }
      message.attempts++;
      const controller = new AbortController();
      instance.inflight.add(controller);
      try {
        const res = await fetch(`${instance.url}/api/messaging/channels/${message.channelId}/messages`, {
          method: "POST",
          headers: { ...H, "idempotency-key": message.key },
          body: JSON.stringify({ text: message.text }),
          signal: AbortSignal.any([controller.signal, AbortSignal.timeout(30_000)]),
        });
        message.statuses.push(res.status);
        await res.arrayBuffer();
        if (res.status === 201 || res.status === 202) {
          message.accepted = true;
          message.acceptedAt = Date.now();
          this.lastAccepted.set(message.channelId, message.acceptedAt);
          return;
        }
        if (res.status < 500 && res.status !== 409 && res.status !== 429) return;
      } catch {
        message.statuses.push(0);
      } finally {
        instance.inflight.delete(controller);
      }
      await Bun.sleep(100);
    }
  }

  /** Stops starting new messages; resolves once every message in flight is settled. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Waits for the first accepted send to the channel that started after `since`: the end of a failover. */
  async acceptedAfter(channelId: string, since: number, timeoutMs: number): Promise<number> {
    const first = () => this.sent.filter((m) => m.channelId === channelId && m.startedAt > since && m.accepted).map((m) => m.acceptedAt);
    await until(() => first().length > 0, timeoutMs, `a send to ${channelId} to succeed`);
    return Math.min(...first()) - since;
  }
}

/**
 * A WebSocket subscriber of one channel that, when its socket closes (an instance stopped or
 * killed), resumes with since_seq on another live instance. It records every message.created.
 */
export class Subscriber {
  readonly created: number[] = [];
  readonly ids: string[] = [];
  outOfOrder = 0;
  reconnects = 0;
  longestGapMs = 0;
  private lastFrameAt = Date.now();
  private socket: WebSocket | null = null;
  private closed = false;
  private lastSeq = 0;

  constructor(
    private readonly cluster: ClusterUnderTest,
    readonly channelId: string,
    private home: string,
  ) {}

  async connect(): Promise<void> {
    const instance = this.cluster.live().find((i) => i.name === this.home) ?? this.cluster.live()[this.reconnects % this.cluster.live().length];
    if (!instance) throw new Error("no live instance");
    this.home = instance.name;
    const since = this.created.length > 0 ? `?since_seq=${this.lastSeq}` : "";
    const socket = new WebSocket(`${instance.url.replace("http", "ws")}/ws/messaging/${this.channelId}${since}`, { headers: { "x-user-id": LOADGEN } } as never);
    this.socket = socket;
    socket.onmessage = (event) => {
      const frame = JSON.parse(String(event.data)) as { type: string; seq: number; message?: { id: string } };
      if (frame.type !== "message.created") return;
      const now = Date.now();
      this.longestGapMs = Math.max(this.longestGapMs, now - this.lastFrameAt);
      this.lastFrameAt = now;
      if (frame.seq <= this.lastSeq) this.outOfOrder++;
      this.lastSeq = Math.max(this.lastSeq, frame.seq);
      this.created.push(frame.seq);
      this.ids.push(frame.message!.id);
    };
    socket.onclose = () => {
      if (this.closed || this.socket !== socket) return;
      this.reconnects++;
      this.home = "";
      void this.reconnect();
    };
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error("socket failed to open"));
    });
  }

  private async reconnect(): Promise<void> {
    for (let attempt = 0; !this.closed && attempt < 200; attempt++) {
      try {
        await this.connect();
        return;
      } catch {
        await Bun.sleep(100);
      }
    }
  }

  get last(): number {
    return this.lastSeq;
  }

  close(): void {
    this.closed = true;
    this.socket?.close();
  }
}
