import type { Logger } from "../log.ts";
import type { EphemeralEvent, MatrixEvent } from "../matrix/port.ts";
import { toMatrixUserId } from "../domain/ids.ts";
import { AppError, channelArchived, notFound } from "../errors.ts";
import type { ChannelRow, MessageRow } from "../store/rows.ts";
import { findChannel } from "../store/channels.ts";
import { lastSeq } from "../store/messages.ts";
import { orMatrixUnavailable } from "../matrix/unavailable.ts";
import { isFenced } from "../store/fences.ts";
import type { ServerFrame } from "../wire/frames.ts";
import type { ArgsOf, CommandName, CommandTable, ResultOf } from "./commands.ts";
import type { ChannelContext } from "./context.ts";
import type { ChannelPorts } from "./deps.ts";
import type { HandlerTable } from "./handlers.ts";
import { ingestAll } from "./ingest.ts";
import { joinPublic } from "./joins.ts";
import { Mailbox } from "./mailbox.ts";
import { describe, Outbox, SEND_BATCH_MAX, type SendCommand, type SendRequest } from "./outbox.ts";

/** What every channel is built from: its ports, and the features' commands and event handlers (features/index.ts). */
export interface ChannelDeps extends ChannelPorts {
  commands: CommandTable;
  handlers: HandlerTable;
}

type Job = {
  run: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Set on sends: queued sends are taken together and written as one batch (group commit). */
  send?: SendRequest;
};

/**
 * One per active channel. The handle's methods enqueue jobs; the private loop runs them one at
 * a time and alone owns the channel's seq counter, so index order, WebSocket order and Matrix
 * timeline order agree.
 */
export class Channel {
  private readonly mailbox: Mailbox<Job>;
  private readonly log: Logger;
  private channel: ChannelRow | null = null;
  private seq = 0;
  private readonly outbox: Outbox;
  private readonly loop: Promise<void>;
  private readonly offLoop = new Set<Promise<void>>();

  constructor(
    readonly channelId: string,
    private readonly deps: ChannelDeps,
    private readonly onStopped: (channel: Channel) => void,
  ) {
    this.mailbox = new Mailbox(deps.mailboxSize);
    this.log = deps.log.child({ channel_id: channelId, component: "channel-actor" });
    this.outbox = new Outbox({
      ctx: this.context,
      setSeq: (seq) => (this.seq = seq),
      schedule: (run) => {
        if (!this.mailbox.isClosed) void this.mailbox.put({ run, resolve: () => {}, reject: () => {} }).catch(() => {});
      },
    });
    this.loop = this.processJobs();
  }

  /**
   * Resolves with the sent row once Matrix confirmed the message, which may be after this
   * command's job (the outbox keeps retrying while the homeserver is unreachable); rejects
   * with 502 MATRIX_REFUSED if Matrix refuses it for good.
   */
  send(cmd: SendCommand): Promise<MessageRow> {
    return this.submit(cmd).delivered;
  }

  /**
   * `accepted` resolves once the pending row is written (durable, with its seq); `delivered`
   * once Matrix confirmed it. Throws MailboxFullError at once when the channel is too busy.
   */
  submit(cmd: SendCommand): { accepted: Promise<MessageRow>; delivered: Promise<MessageRow> } {
    const accepted = Promise.withResolvers<MessageRow>();
    const delivered = Promise.withResolvers<MessageRow>();
    const failBoth = (err: unknown) => {
      accepted.reject(err);
      delivered.reject(err);
    };
    // Outside the promises: a full mailbox is thrown to the caller at once.
    const send: SendRequest = { cmd, waiter: { resolve: delivered.resolve, reject: failBoth, accepted: accepted.resolve } };
    this.mailbox.offer({ run: () => this.runSends([send]), resolve: () => {}, reject: failBoth, send });
    // Whoever stops waiting (a 202) must not turn a later refusal into an unhandled rejection.
    accepted.promise.catch(() => {});
    delivered.promise.catch(() => {});
    return { accepted: accepted.promise, delivered: delivered.promise };
  }

  /**
   * Runs a feature's command, by name, inside this channel's loop after what is already
   * queued; a full mailbox refuses it (503), and so does an archived channel (410).
   */
  run<K extends CommandName>(name: K, args: ArgsOf<K>): Promise<ResultOf<K>> {
    const command = this.deps.commands[name];
    if (!command) return Promise.reject(new Error(`no channel command is named ${name}`));
    return this.ask(() => command(this.context, args) as Promise<ResultOf<K>>);
  }

  /**
   * For a job that only reads and sends to one socket (a WebSocket replay): it also runs in an
   * archived channel, whose history stays readable.
   */
  observe<T>(fn: (ctx: ChannelContext) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.mailbox.offer({ run: () => fn(this.context), resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** Typing or a receipt from Matrix, queued behind the channel's work; a full mailbox (or an archive) refuses it. */
  ingestEphemeral(event: EphemeralEvent): Promise<void> {
    const handler = this.deps.handlers.ephemeral.get(event.type);
    if (!handler) return Promise.resolve();
    return this.ask(() => handler.handle(this.context, event));
  }

  /** The latest message seq this channel handed out; frames that are not messages carry it. */
  get currentSeq(): number {
    return this.seq;
  }

  /** From the sync poller: waits for mailbox room rather than dropping a homeserver event. */
  async ingest(event: MatrixEvent): Promise<void> {
    await this.ingestAll([event]);
  }

  /** A room's events in timeline order, as one job (see ingest.ts). */
  async ingestAll(events: MatrixEvent[], unindexed: string[] = []): Promise<void> {
    const known = { unindexed: new Set(unindexed) };
    const writesLeftRunning: Promise<void>[] = [];
    await new Promise((resolve, reject) =>
      this.mailbox
        .put({ run: () => ingestAll(this.context, this.deps.handlers, this.outbox, (seq) => (this.seq = seq), events, known, (work) => writesLeftRunning.push(this.trackOffLoop(work))), resolve, reject })
        .catch(reject),
    );
    // Resolves once every write of the job is done, the ones the loop did not wait for too.
    await Promise.all(writesLeftRunning);
  }

  /** Writes a job left running when the loop went on; stop() waits for them. */
  private trackOffLoop(work: Promise<void>): Promise<void> {
    this.offLoop.add(work);
    work.finally(() => this.offLoop.delete(work)).catch(() => {});
    return work;
  }

  get queued(): number {
    return this.mailbox.size;
  }

  /** Stops taking work, finishes what is queued, then resolves. Pending sends stay durable for the next start. */
  async stop(): Promise<void> {
    this.mailbox.close();
    this.outbox.stopRetrying();
    await this.loop;
    await Promise.allSettled([...this.offLoop]);
    this.outbox.stopRetrying();
    this.outbox.abandonWaiters();
  }

  /** Jobs waiting in the mailbox, for the metrics. */
  get queuedJobs(): number {
    return this.mailbox.size;
  }

  private runSends(requests: SendRequest[]): Promise<void> {
    // Like every command, a send that passed its access check just before an archive is refused in order.
    if (this.channel?.archived_at) return Promise.reject(channelArchived());
    return this.outbox.runSends(requests);
  }

  private ask<T>(run: () => Promise<T>): Promise<T> {
    // Commands are changes: one that passed its access check just before the channel was
    // archived is refused here, in channel order, like the ones after it.
    const guarded = () => (this.channel?.archived_at ? Promise.reject(channelArchived()) : run());
    return new Promise<T>((resolve, reject) => {
      this.mailbox.offer({ run: guarded, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  private async processJobs(): Promise<void> {
    this.log.info("actor started");
    try {
      await this.init();
    } catch (err) {
      this.log.error({ err: describe(err) }, "actor failed to start");
      this.mailbox.close();
      this.onStopped(this);
      for (let job = await this.mailbox.take(0); job; job = await this.mailbox.take(0)) job.reject(err);
      return;
    }
    for (;;) {
      const job = await this.mailbox.take(this.deps.idleMs);
      // Pending sends keep the channel alive: its retry timer will bring the next job.
      if (!job && this.outbox.pending > 0 && !this.mailbox.isClosed) continue;
      if (!job) {
        // Idle with an empty mailbox (or closed and drained): leave the registry in this same
        // tick, so the next command spawns a fresh channel instead of landing here.
        this.onStopped(this);
        break;
      }
      // Sends queued behind this one join its batch; anything else keeps its place in line.
      const jobs = job.send ? [job, ...this.mailbox.takeWhile((next) => next.send !== undefined, SEND_BATCH_MAX - 1)] : [job];
      const run = jobs.length === 1 ? job.run : () => this.runSends(jobs.map((j) => j.send!));
      try {
        const result = await run();
        for (const j of jobs) j.resolve(result);
      } catch (err) {
        // Cluster mode: another instance took the channel over; this one's write changed nothing.
        if (isFenced(err)) this.log.warn({ jobs: jobs.length }, "fenced write refused: this instance no longer owns the channel");
        for (const j of jobs) j.reject(err);
      }
    }
    this.log.info({ reason: this.mailbox.isClosed ? "stopped" : "idle" }, "actor stopped");
  }

  private async init() {
    // Cluster mode: take the channel's fence first; an earlier owner's writes are refused from here on.
    if (this.deps.claim) await this.deps.claim(this.channelId);
    const channel = await findChannel(this.deps.sql, this.channelId);
    if (!channel) throw notFound("channel");
    this.channel = channel;
    this.seq = await lastSeq(this.deps.sql, this.channelId);
    await this.outbox.load();
  }

  private readonly context: ChannelContext = (() => {
    const self = this;
    const ctx: ChannelContext = {
      get channelId() {
        return self.channelId;
      },
      get channel() {
        return self.channel!;
      },
      get room() {
        return self.channel!.matrix_room_id;
      },
      get deps() {
        return self.deps;
      },
      get log() {
        return self.log;
      },
      get seq() {
        return self.seq;
      },
      matrixId: (id) => toMatrixUserId(id, self.deps.matrix.serverName),
      setChannel: (row) => {
        self.channel = row;
      },
      matrixCall: (fn) => {
        // Matrix cannot be fenced: an instance that lost the channel does not call it.
        if (self.deps.stillOwner && !self.deps.stillOwner(self.channelId)) {
          return Promise.reject(new AppError(503, "CHANNEL_MOVED", "the channel moved to another instance; retry", { "Retry-After": "1" }));
        }
        return orMatrixUnavailable(fn, "refused the change");
      },
      joinPublic: (memberId) => joinPublic(ctx, memberId),
      announce: (frame, subject, payload) => {
        self.deps.broadcast(self.channelId, ("seq" in frame ? frame : { ...frame, seq: self.seq }) as ServerFrame);
        return subject && payload ? self.deps.events.publish(subject, payload) : Promise.resolve();
      },
    };
    return ctx;
  })();
}

