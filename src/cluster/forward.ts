import { serialize, deserialize } from "bun:jsc";
import type { NatsConnection, Subscription } from "nats";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ChannelRegistry } from "../channel/registry.ts";
import { NotOwnerError, type ChannelOp, type ChannelRouter } from "../channel/router.ts";
import { MailboxClosedError, MailboxFullError } from "../channel/mailbox.ts";
import { isFenced } from "../store/fences.ts";
import type { ClusterOwnership } from "./ownership.ts";

/** The subject an instance (incarnation) of a cluster answers channel ops on. */
export const commandSubject = (cluster: string, incarnation: string) => `daarion.cluster.${cluster}.${incarnation}.cmd`;

type Reply =
  | { ok: true; value: unknown }
  | { ok: false; moved: true }
  | { ok: false; moved?: false; status: number; code: string; message: string; headers: Record<string, string> };

/** An op that ran into the fence here (ownership lost mid-way) is answered as retryable, never retried blindly. */
const lostMidway = () => new AppError(503, "CHANNEL_MOVED", "the channel moved to another instance while the request ran; retry it (with its Idempotency-Key)", { "Retry-After": "1" });
const pack = (value: unknown) => serialize(value, { binaryType: "nodebuffer" });
const noOwner = () => new AppError(503, "CHANNEL_UNAVAILABLE", "the channel is moving to another instance; try again", { "Retry-After": "1" });

/** How long the owner may take: a send waits for Matrix's confirmation, plus room for the queue. */
function opTimeoutMs(op: ChannelOp): number {
  if (op.kind === "send") return op.confirmWithinMs + 15_000;
  if (op.kind === "ingest") return 60_000;
  return 30_000;
}

function toReply(err: unknown): Reply {
  // Not run: this instance no longer owns the channel, or its actor is stopping to hand it over.
  if (err instanceof NotOwnerError || err instanceof MailboxClosedError) return { ok: false, moved: true };
  if (isFenced(err)) {
    const e = lostMidway();
    return { ok: false, status: e.status, code: e.code, message: e.message, headers: e.headers };
  }
  if (err instanceof MailboxFullError) return { ok: false, status: 503, code: "CHANNEL_BUSY", message: "channel is busy; retry shortly", headers: { "Retry-After": String(err.retryAfterSeconds) } };
  if (err instanceof AppError) return { ok: false, status: err.status, code: err.code, message: err.message, headers: err.headers };
  return { ok: false, status: 500, code: "INTERNAL", message: "internal error", headers: {} };
}

/**
 * Channel ops over NATS request/reply. Structured clone (bun:jsc) keeps what JSON would not
 * (Dates in rows): both ends are this service on the same Bun.
 */
export class CommandForwarding implements ChannelRouter {
  private subscription: Subscription | null = null;

  constructor(
    private readonly nc: NatsConnection,
    private readonly me: string,
    private readonly ownership: ClusterOwnership,
    private readonly registry: ChannelRegistry,
    private readonly ownerWaitMs: number,
    private readonly log: Logger,
    private readonly cluster: string,
  ) {}

  /** Answers ops for the channels this instance owns. */
  serve(): void {
    void this.watchConnection();
    this.subscription = this.nc.subscribe(commandSubject(this.cluster, this.me), {
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          let reply: Reply;
          try {
            const { channelId, op } = deserialize(msg.data) as { channelId: string; op: ChannelOp };
            reply = this.ownership.holds(channelId) ? { ok: true, value: await this.registry.execute(channelId, op) } : { ok: false, moved: true };
          } catch (e) {
            reply = toReply(e);
            if (!reply.ok && !("moved" in reply && reply.moved) && reply.status >= 500 && reply.code === "INTERNAL") this.log.error({ err: String(e) }, "forwarded channel op failed");
          }
          msg.respond(pack(reply));
        })();
      },
    });
  }

  async dispatch(channelId: string, op: ChannelOp): Promise<unknown> {
    const deadline = Date.now() + this.ownerWaitMs;
    for (;;) {
      const owner = this.ownership.ownerOf(channelId);
      if (owner === this.me) {
        try {
          return await this.registry.execute(channelId, op);
        } catch (err) {
          if (isFenced(err)) throw lostMidway();
          if (!(err instanceof NotOwnerError || err instanceof MailboxClosedError)) throw err;
        }
      } else if (owner) {
        const reply = await this.ask(owner, channelId, op);
        if (reply) {
          if (reply.ok) return reply.value;
          if (!("moved" in reply && reply.moved)) {
            const r = reply as Extract<Reply, { status: number }>;
            throw new AppError(r.status, r.code, r.message, r.headers);
          }
        }
      }
      // Asked again, a send may find its first attempt's row.
      if (op.kind === "send" && op.cmd.newId) op = { ...op, cmd: { ...op.cmd, newId: false } };
      // No owner yet (a takeover), or it answered that it no longer owns the channel: wait for the next lease round.
      const left = deadline - Date.now();
      if (left <= 0) throw noOwner();
      await this.ownership.nextRound(Math.min(left, 500));
    }
  }

  /**
   * The owner's reply, or null when it is gone: nobody answers on its subject, or while waiting
   * the channel moved to another instance or the NATS connection was re-established (the reply
   * would be lost). Asking again is then safe: the old owner is fenced, and a send carries its
   * message id, so the new owner finds the first attempt.
   */
  private async ask(owner: string, channelId: string, op: ChannelOp): Promise<Reply | null> {
    const reconnectsBefore = this.reconnects;
    let watching = true;
    const abandoned = (async () => {
      while (watching) {
        await this.ownership.nextRound(250);
        if (!watching) return null;
        const now = this.ownership.ownerOf(channelId);
        if ((now && now !== owner) || this.reconnects !== reconnectsBefore) return "abandoned" as const;
      }
      return null;
    })();
    try {
      const answer = await Promise.race([this.nc.request(commandSubject(this.cluster, owner), pack({ channelId, op }), { timeout: opTimeoutMs(op) }), abandoned]);
      if (answer === "abandoned" || answer === null) return null;
      return deserialize(answer.data) as Reply;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "503") return null;
      // A timeout: the owner may have run it (it is paused, or overloaded). Retrying here could run it twice.
      if (code === "TIMEOUT") throw new AppError(503, "CHANNEL_UNAVAILABLE", "the channel's owner did not answer in time; retry it (with its Idempotency-Key)", { "Retry-After": "1" });
      throw noOwner();
    } finally {
      watching = false;
    }
  }

  private reconnects = 0;

  /** Counts reconnections: a request in flight across one may never get its reply. */
  private async watchConnection(): Promise<void> {
    for await (const status of this.nc.status()) if (status.type === "reconnect") this.reconnects++;
  }

  async stop(): Promise<void> {
    await this.subscription?.drain().catch(() => {});
    this.subscription = null;
  }
}
