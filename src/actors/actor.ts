import type { Logger } from "../log.ts";
import { backoffDelay, type BackoffPolicy } from "../backoff.ts";
import type { Sql } from "../store/db.ts";
import type { EventBus } from "../events/bus.ts";
import { Subjects } from "../events/model.ts";
import { MatrixError, joinRuleFor, type MatrixBackend, type MatrixEvent, type SentEvents } from "../matrix/port.ts";
import { fromMatrixUserId, isServiceUser, senderTypeOf, stripReplyFallback, toMatrixUserId } from "../domain/ids.ts";
import { consumeInboxEvent, consumeInboxEvents } from "../store/inbox.ts";
import { ENCRYPTED_CONTENT_TYPE, ENCRYPTED_EVENT_TYPE, refuseIfEncrypted } from "../features/confidential/policy.ts";
import { indexedPreview } from "../domain/preview.ts";
import { AppError, channelArchived, conflict, notFound } from "../errors.ts";
import type { ChannelRow, MemberRow, MessageRow, Role } from "../store/rows.ts";
import { findChannel, pendingInvite, updateChannel, type ChannelPatch } from "../store/channels.ts";
import { recordChannelEvent } from "../store/channel-events.ts";
import { findMember, listMembers, recordDeparture, upsertMember } from "../store/members.ts";
import { membershipRecord, rightsOrDefaults, type MemberRights } from "../domain/member-rights.ts";
import {
  findMessage,
  findMessageByEvent,
  findMessages,
  insertMessage,
  insertMessages,
  lastSeq,
  markAllSent,
  markFailed,
  latestInThread,
  pendingMessages,
  type NewMessage,
} from "../store/messages.ts";
import { Mailbox } from "./mailbox.ts";
import type { ActorContext } from "./context.ts";
import { eventIngesters, relationIngesters } from "./ingest-routes.ts";
import { toMessageView } from "../features/messages/view.ts";
import { sendTargets } from "../features/messages/targets.ts";
import { toMemberView } from "../features/members/model.ts";
import { toChannelView } from "../features/channels/model.ts";
import { mediaFromContent } from "../features/files/media.ts";
import type { ServerFrame } from "../realtime/model.ts";
import type { SocketRegistry } from "../realtime/sockets.ts";
import { announceRemoval } from "../features/members/commands.ts";
import { setUserPower } from "../features/members/power.ts";

export interface ActorDeps {
  sql: Sql;
  matrix: MatrixBackend;
  events: EventBus;
  broadcast: (channelId: string, frame: ServerFrame) => void;
  log: Logger;
  mailboxSize: number;
  idleMs: number;
  /** Open channel sockets by member, ended when the member loses the read right. */
  sockets?: SocketRegistry;
}

export interface SendCommand {
  senderId: string;
  text: string;
  msgtype: string;
  formattedBody: string | null;
  replyTo: string | null;
  /** The message id (and Matrix transaction id); the caller may choose it to find the row later. */
  id?: string;
  /** The root message of the thread this message is posted into. */
  threadId?: string | null;
  /** More Matrix content (a media message's url and info, say). */
  extraContent?: Record<string, unknown>;
  /** A public channel's first write joins the sender as a member. */
  joinFirst: boolean;
}

export interface InviteCommand extends MemberRights {
  inviterId: string;
  memberId: string;
}

/** An invitation a Matrix user from outside has yet to accept. */
export interface PendingInvite {
  status: "invited";
  channel_id: string;
  member_id: string;
  matrix_user_id: string;
  role: Role;
}

type DeliveryWaiter = { resolve: (row: MessageRow) => void; reject: (err: unknown) => void; accepted?: (row: MessageRow) => void };

/** Pending sends are tried again after 0.5 s, doubling to 30 s, jittered so channels do not retry in step. */
const OUTBOX_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 30_000 };

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

/** A refusal that retrying cannot change (any 4xx but 429); anything else is worth retrying. */
function isPermanent(err: unknown): boolean {
  if (err instanceof AppError) return err.status < 500;
  if (!(err instanceof MatrixError)) return false;
  return err.httpStatus >= 400 && err.httpStatus < 500 && err.httpStatus !== 429 && err.errcode !== "M_LIMIT_EXCEEDED";
}

type SendRequest = { cmd: SendCommand; waiter: DeliveryWaiter };
type Job = {
  run: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Set on sends: queued sends are taken together and written as one batch (group commit). */
  send?: SendRequest;
};

/**
 * The most sends written in one batch. A batch is one INSERT, one Matrix call on the local
 * backend, one UPDATE; a bigger one would only delay the first sender's answer.
 */
const SEND_BATCH_MAX = 64;
/** Event ids of our own sends whose echo from the homeserver has not come back yet. */
const OWN_ECHOES_MAX = 10_000;

const CONTENT_TYPES: Record<string, string> = {
  "m.image": "image",
  "m.file": "file",
  "m.audio": "audio",
  "m.video": "video",
};

/**
 * One per active channel. The handle's typed methods enqueue jobs; the private loop runs them
 * one at a time and alone owns the channel's seq counter, so index order, WebSocket order and
 * Matrix timeline order agree.
 */
export class ChannelActor {
  private readonly mailbox: Mailbox<Job>;
  private readonly log: Logger;
  private channel: ChannelRow | null = null;
  private seq = 0;
  /** Pending send ids, in seq order: the outbox this actor delivers to Matrix. */
  private readonly outbox: string[] = [];
  /** The outbox's rows as this actor wrote or loaded them: only this actor changes a pending row. */
  private readonly outboxRows = new Map<string, MessageRow>();
  /** Who waits for a send's outcome: usually one caller; a retry with the same id joins it. */
  private readonly waiters = new Map<string, DeliveryWaiter[]>();
  /** Lets the echo of our own send be recognised without a look-up; a miss falls back to the index. */
  private readonly ownEchoes = new Set<string>();
  private readonly announcedPending = new Set<string>();
  /** Pending sends whose last attempt may have reached Matrix. */
  private readonly uncertain = new Set<string>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private retryAttempt = 0;
  private readonly loop: Promise<void>;

  constructor(
    readonly channelId: string,
    private readonly deps: ActorDeps,
    private readonly onStopped: (actor: ChannelActor) => void,
  ) {
    this.mailbox = new Mailbox(deps.mailboxSize);
    this.log = deps.log.child({ channel_id: channelId, component: "channel-actor" });
    this.loop = this.run();
  }

  /**
   * Resolves with the sent row once Matrix confirmed the message, which may be after this
   * command's job (the outbox keeps retrying while the homeserver is unreachable); rejects
   * with 502 MATRIX_REFUSED if Matrix refuses it for good. The row is durable (pending) as
   * soon as the job ran; callers that cannot wait look it up by the id they chose.
   */
  send(cmd: SendCommand): Promise<MessageRow> {
    return this.submit(cmd).delivered;
  }

  /**
   * `accepted` resolves once the pending row is written (durable, with its seq); `delivered`
   * once Matrix confirmed it. Throws MailboxFullError at once when the channel is too busy.
   */
  submit(cmd: SendCommand): { accepted: Promise<MessageRow>; delivered: Promise<MessageRow> } {
    let accept!: (row: MessageRow) => void;
    let refuse!: (err: unknown) => void;
    let deliver!: (row: MessageRow) => void;
    let fail!: (err: unknown) => void;
    const accepted = new Promise<MessageRow>((resolve, reject) => {
      accept = resolve;
      refuse = reject;
    });
    const delivered = new Promise<MessageRow>((resolve, reject) => {
      deliver = resolve;
      fail = reject;
    });
    const failBoth = (err: unknown) => {
      refuse(err);
      fail(err);
    };
    // Outside the promises: a full mailbox is thrown to the caller at once.
    // Like every command, a send that passed its access check just before an archive is refused in order.
    const send: SendRequest = { cmd, waiter: { resolve: deliver, reject: failBoth, accepted: accept } };
    this.mailbox.offer({ run: () => this.runSends([send]), resolve: () => {}, reject: failBoth, send });
    // Whoever stops waiting (a 202) must not turn a later refusal into an unhandled rejection.
    accepted.catch(() => {});
    delivered.catch(() => {});
    return { accepted, delivered };
  }

  invite(cmd: InviteCommand): Promise<MemberRow | PendingInvite> {
    return this.ask<MemberRow | PendingInvite>(() => (cmd.memberId.startsWith("matrix:") ? this.doInviteMatrixUser(cmd) : this.doInvite(cmd)));
  }

  update(actorId: string, patch: ChannelPatch): Promise<ChannelRow> {
    return this.ask(() => this.doUpdate(actorId, patch));
  }

  /**
   * Runs a feature's command inside this channel's loop, after what is already queued; a full
   * mailbox refuses it (503). Feature modules wrap this in typed functions.
   */
  exec<T>(fn: (ctx: ActorContext) => Promise<T>): Promise<T> {
    return this.ask(() => fn(this.context));
  }

  /**
   * Like exec, for a job that only reads and sends to one socket (a WebSocket replay): it also
   * runs in an archived channel, whose history stays readable.
   */
  observe<T>(fn: (ctx: ActorContext) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.mailbox.offer({ run: () => fn(this.context), resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** The latest message seq this channel handed out; frames that are not messages carry it. */
  get currentSeq(): number {
    return this.seq;
  }

  /** From the sync poller: waits for mailbox room rather than dropping a homeserver event. */
  async ingest(event: MatrixEvent): Promise<void> {
    await this.ingestAll([event]);
  }

  /**
   * A room's events in timeline order, as one job. Stops at the first event that fails; the
   * ones before it are indexed (their inbox rows consumed), the rest stay in the inbox.
   */
  async ingestAll(events: MatrixEvent[]): Promise<void> {
    await new Promise((resolve, reject) =>
      this.mailbox.put({ run: () => this.doIngestAll(events), resolve, reject }).catch(reject),
    );
  }

  get queued(): number {
    return this.mailbox.size;
  }

  /** Stops taking work, finishes what is queued, then resolves. Pending sends stay durable for the next start. */
  async stop(): Promise<void> {
    this.mailbox.close();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.loop;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const [id, waiters] of this.waiters) {
      for (const waiter of waiters) {
        waiter.reject(new AppError(503, "SHUTTING_DOWN", "the service stopped before Matrix confirmed the message; it stays pending", { "Retry-After": "5" }));
      }
      this.waiters.delete(id);
    }
  }

  private ask<T>(run: () => Promise<T>): Promise<T> {
    // Commands are changes: one that passed its access check just before the channel was
    // archived is refused here, in channel order, like the ones after it.
    const guarded = () => (this.channel?.archived_at ? Promise.reject(channelArchived()) : run());
    return new Promise<T>((resolve, reject) => {
      this.mailbox.offer({ run: guarded, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  private async run(): Promise<void> {
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
      // Pending sends keep the actor alive: its retry timer will bring the next job.
      if (!job && this.outbox.length > 0 && !this.mailbox.isClosed) continue;
      if (!job) {
        // Idle with an empty mailbox (or closed and drained): leave the registry in this same
        // tick, so the next command spawns a fresh actor instead of landing here.
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
        for (const j of jobs) j.reject(err);
      }
    }
    this.log.info({ reason: this.mailbox.isClosed ? "stopped" : "idle" }, "actor stopped");
  }

  private async init() {
    const channel = await findChannel(this.deps.sql, this.channelId);
    if (!channel) throw notFound("channel");
    this.channel = channel;
    this.seq = await lastSeq(this.deps.sql, this.channelId);
    // Sends accepted before a crash (or while Matrix was down) go first, with their original txnId.
    for (const row of await pendingMessages(this.deps.sql, this.channelId)) {
      this.outbox.push(row.id);
      this.outboxRows.set(row.id, row);
      // Subscribers (and resuming clients, from the index) know it as pending already; and
      // a crash may have come after Matrix took it.
      this.announcedPending.add(row.id);
      this.uncertain.add(row.id);
    }
    if (this.outbox.length > 0) await this.pumpOutbox();
  }

  private get room(): string {
    return this.channel!.matrix_room_id;
  }

  private readonly context: ActorContext = (() => {
    const actor = this;
    return {
      get channelId() {
        return actor.channelId;
      },
      get channel() {
        return actor.channel!;
      },
      get room() {
        return actor.room;
      },
      get deps() {
        return actor.deps;
      },
      get log() {
        return actor.log;
      },
      get seq() {
        return actor.seq;
      },
      matrixId: (id: string) => actor.matrixId(id),
      setChannel: (row: ChannelRow) => {
        actor.channel = row;
      },
      matrixCall: <T>(fn: () => Promise<T>) => actor.matrixCall(fn),
      joinPublic: (memberId: string) => actor.joinPublic(memberId),
    };
  })();

  private matrixId(daarionId: string) {
    return toMatrixUserId(daarionId, this.deps.matrix.serverName);
  }

  /**
   * Writes a batch of sends as pending rows in one statement, then delivers them. Each send is
   * checked on its own: one with a bad reply_to is refused without holding up the others.
   */
  private async runSends(requests: SendRequest[]): Promise<void> {
    // Like every command, a send that passed its access check just before an archive is refused in order.
    if (this.channel?.archived_at) throw channelArchived();
    const { sql } = this.deps;
    const chosenIds = requests.flatMap((r) => (r.cmd.id ? [r.cmd.id] : []));
    const existing = await findMessages(sql, this.channelId, chosenIds);
    const fresh: Array<{ message: NewMessage; waiter: DeliveryWaiter }> = [];
    const sameIdAgain: SendRequest[] = [];
    for (const request of requests) {
      const { cmd, waiter } = request;
      // The same id again (a retry whose first attempt's answer was lost): that message, not a new one.
      const found = cmd.id ? existing.get(cmd.id) : undefined;
      if (found) {
        this.rejoin(found, waiter);
        continue;
      }
      if (cmd.id && fresh.some((f) => f.message.id === cmd.id)) {
        sameIdAgain.push(request);
        continue;
      }
      try {
        fresh.push({ message: await this.prepareSend(cmd, this.seq + fresh.length + 1), waiter });
      } catch (err) {
        waiter.reject(err);
      }
    }
    if (fresh.length === 0) return;
    // Durable first: the rows exist (pending, with what to send) before Matrix is asked.
    const inserted = await insertMessages(sql, fresh.map((f) => f.message));
    const wasIdle = this.outbox.length === 0;
    this.seq += inserted.length;
    inserted.forEach((row, i) => {
      fresh[i]!.waiter.accepted?.(row);
      this.addWaiter(row.id, fresh[i]!.waiter);
      this.outbox.push(row.id);
      this.outboxRows.set(row.id, row);
    });
    for (const { cmd, waiter } of sameIdAgain) this.rejoin(inserted.find((row) => row.id === cmd.id)!, waiter);
    // Behind an earlier pending send, these wait their turn (Matrix order follows seq order).
    if (wasIdle) await this.pumpOutbox();
    else for (const row of inserted) await this.announcePending(row);
  }

  /** A send that is already in the index: its caller gets that message's outcome. */
  private rejoin(row: MessageRow, waiter: DeliveryWaiter) {
    waiter.accepted?.(row);
    if (row.delivery_state === "sent") waiter.resolve(row);
    else if (row.delivery_state === "failed") waiter.reject(new AppError(502, "MATRIX_REFUSED", "Matrix refused the message"));
    else this.addWaiter(row.id, waiter);
  }

  private addWaiter(id: string, waiter: DeliveryWaiter) {
    const waiters = this.waiters.get(id);
    if (waiters) waiters.push(waiter);
    else this.waiters.set(id, [waiter]);
  }

  /**
   * Checks one send and builds its pending row (with the Matrix content to deliver). Whatever
   * can refuse it is checked before a first write joins the sender: a refused send writes nothing.
   */
  private async prepareSend(cmd: SendCommand, seq: number): Promise<NewMessage> {
    const { sql } = this.deps;
    refuseIfEncrypted(this.channel);
    const targets = await sendTargets(sql, this.channelId, cmd.replyTo, cmd.threadId);
    const replyEventId = targets.replyTo?.matrix_event_id ?? null;
    const content: Record<string, unknown> = { ...cmd.extraContent, msgtype: cmd.msgtype, body: cmd.text };
    if (cmd.formattedBody) {
      content.format = "org.matrix.custom.html";
      content.formatted_body = cmd.formattedBody;
    }
    const root = targets.threadRoot;
    if (root) {
      const latest = await latestInThread(sql, root.id);
      content["m.relates_to"] = {
        rel_type: "m.thread",
        event_id: root.matrix_event_id,
        // Clients without threads show it as a reply: to the message named, or to the thread's latest.
        is_falling_back: !replyEventId,
        "m.in_reply_to": { event_id: replyEventId ?? latest?.matrix_event_id ?? root.matrix_event_id },
      };
    } else if (replyEventId) {
      content["m.relates_to"] = { "m.in_reply_to": { event_id: replyEventId } };
    }
    if (cmd.joinFirst) await this.joinPublic(cmd.senderId);
    return {
      id: cmd.id ?? Bun.randomUUIDv7(),
      channel_id: this.channelId,
      seq,
      matrix_event_id: null,
      matrix_type: "m.room.message",
      sender_id: cmd.senderId,
      sender_type: senderTypeOf(cmd.senderId),
      sender_matrix_id: this.matrixId(cmd.senderId),
      sender_display_name: null,
      content_preview: indexedPreview(this.channel, cmd.text),
      content_type: CONTENT_TYPES[cmd.msgtype] ?? "text",
      msgtype: cmd.msgtype,
      thread_id: root?.id ?? null,
      reply_to: cmd.replyTo,
      delivery_state: "pending",
      outbox_content: content,
      created_at: null,
      media: mediaFromContent(content),
    };
  }

  /**
   * Delivers pending sends to Matrix in seq order, each with its message id as txnId, so a
   * retry can never create a second event. A transient failure (unreachable, 5xx, 429 past the
   * retry budget) keeps the row pending and retries later with capped, jittered backoff; a refusal marks
   * it failed with its reason.
   */
  private async pumpOutbox(): Promise<void> {
    try {
      await this.deliverOutbox();
    } catch (err) {
      // The index failed (a database restart, say) with sends still pending: they are tried
      // again on their own, not only when the next send or echo comes along.
      if (this.outbox.length > 0 && !this.retryTimer) this.retryLater(err);
      throw err;
    }
  }

  private async deliverOutbox(): Promise<void> {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    while (this.outbox.length > 0) {
      const head = this.outbox.slice(0, SEND_BATCH_MAX);
      const rows = await this.outboxRowsOf(head);
      // Gone from the index since it was queued (its channel deleted, say): nothing to deliver.
      const gone = new Set(head.filter((id) => rows.get(id)?.delivery_state !== "pending"));
      if (gone.size > 0) {
        const remaining = this.outbox.filter((id) => !gone.has(id));
        this.outbox.splice(0, this.outbox.length, ...remaining);
        for (const id of gone) this.outboxRows.delete(id);
        continue;
      }
      // A send whose last attempt may have reached Matrix goes alone, after a look in the room.
      const firstUncertain = head.findIndex((id) => this.uncertain.has(id));
      const batch = head.slice(0, firstUncertain === 0 ? 1 : firstUncertain === -1 ? head.length : firstUncertain).map((id) => rows.get(id)!);
      const result = await this.deliver(batch);
      const delivered = batch.slice(0, result.eventIds.length);
      if (delivered.length > 0) await this.confirmSent(delivered, result.eventIds);
      if (result.error === undefined) continue;
      const row = batch[delivered.length]!;
      const id = row.id;
      const err = result.error;
      if (isPermanent(err)) {
        const reason = err instanceof MatrixError ? `${err.errcode}: ${err.message}` : String(err);
        const failed = await markFailed(this.deps.sql, row.id, reason.slice(0, 500));
        this.outbox.shift();
        this.outboxRows.delete(id);
        this.announcedPending.delete(id);
        this.log.warn({ message_id: id, errcode: (err as MatrixError).errcode }, "matrix refused a message; marked failed");
        this.deps.broadcast(this.channelId, { type: "message.failed", seq: Number(failed.seq), message: toMessageView(failed) });
        await this.deps.events.publish(Subjects.messageFailed, {
          event_id: `message.failed:${id}`,
          channel_id: this.channelId,
          message_id: id,
          seq: Number(failed.seq),
          sender_id: failed.sender_id,
          reason: failed.failure_reason ?? reason,
          failed_at: new Date().toISOString(),
        });
        this.settle(id, (w) => w.reject(new AppError(502, "MATRIX_REFUSED", `Matrix refused the message (${(err as MatrixError).errcode ?? "M_UNKNOWN"})`)));
        continue;
      }
      // Unreachable or overloaded: everything from here on stays pending, in order. Whether
      // Matrix took this one is unknown (the ones after it were not tried, or are deduplicated
      // by their txnId in a homeserver that keeps txnIds, as the local backend does).
      this.uncertain.add(id);
      for (const pendingId of this.outbox) {
        const pendingRow = rows.get(pendingId) ?? (await findMessage(this.deps.sql, this.channelId, pendingId));
        if (pendingRow) await this.announcePending(pendingRow);
      }
      this.log.warn({ message_id: id, pending: this.outbox.length, err: describe(err) }, "matrix unavailable; sends stay pending");
      this.retryLater(err);
      return;
    }
  }

  /** Brings the outbox back into the loop after a capped, jittered backoff. */
  private retryLater(err: unknown) {
    const delay = backoffDelay(this.retryAttempt++, OUTBOX_BACKOFF);
    this.log.info({ pending: this.outbox.length, retry_in_ms: delay, err: describe(err) }, "pending sends will be tried again");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.mailbox.isClosed) void this.mailbox.put({ run: () => this.pumpOutbox(), resolve: () => {}, reject: () => {} }).catch(() => {});
    }, delay);
  }

  private async outboxRowsOf(ids: string[]): Promise<Map<string, MessageRow>> {
    const missing = ids.filter((id) => !this.outboxRows.has(id));
    if (missing.length > 0) for (const [id, row] of await findMessages(this.deps.sql, this.channelId, missing)) this.outboxRows.set(id, row);
    return new Map(ids.flatMap((id) => (this.outboxRows.has(id) ? [[id, this.outboxRows.get(id)!] as const] : [])));
  }

  /** Hands a batch of pending sends to Matrix, each with its message id as txnId. */
  private async deliver(batch: MessageRow[]): Promise<SentEvents> {
    try {
      for (const sender of new Set(batch.map((row) => row.sender_matrix_id))) await this.deps.matrix.ensureUser(sender);
      // After an attempt whose outcome is unknown (the homeserver went away mid-request, or this
      // process died), the event may exist already, and a homeserver restart forgets txnIds:
      // look for it before sending again.
      const [first] = batch;
      if (first && this.uncertain.has(first.id)) {
        const already = await this.findDelivered(first).catch((err) => (isPermanent(err) ? null : Promise.reject(err)));
        if (already) return { eventIds: [already.eventId] };
      }
      return await this.deps.matrix.sendEvents(
        this.room,
        batch.map((row) => ({ asUser: row.sender_matrix_id, type: "m.room.message", content: row.outbox_content ?? {}, txnId: row.id })),
      );
    } catch (error) {
      return { eventIds: [], error };
    }
  }

  /** Matrix took these (the outbox's head, in order): index them as sent and tell everyone. */
  private async confirmSent(rows: MessageRow[], eventIds: string[]) {
    // Until the index says sent, a retry must look in the room first.
    for (const row of rows) this.uncertain.add(row.id);
    const sent = await markAllSent(this.deps.sql, rows.map((row, i) => ({ id: row.id, eventId: eventIds[i]! })));
    this.outbox.splice(0, rows.length);
    for (const row of rows) this.outboxRows.delete(row.id);
    this.retryAttempt = 0;
    for (const row of sent) {
      this.uncertain.delete(row.id);
      this.rememberOwnEcho(row.matrix_event_id!);
    }
    // Broadcast in seq order at once; the events bus writes the batch's events together.
    await Promise.all(sent.map((row) => this.announceMessage(row, this.announcedPending.delete(row.id))));
    for (const row of sent) this.settle(row.id, (w) => w.resolve(row));
  }

  private rememberOwnEcho(eventId: string) {
    this.ownEchoes.add(eventId);
    // An echo that never comes (a crash, a limited sync) must not grow the set for ever.
    if (this.ownEchoes.size > OWN_ECHOES_MAX) this.ownEchoes.delete(this.ownEchoes.values().next().value!);
  }

  /**
   * The event a pending send already became, if any: the newest events of the room from the
   * same sender with the same content, sent since the row was written and not indexed yet.
   */
  private async findDelivered(row: MessageRow): Promise<{ eventId: string } | null> {
    const page = await this.deps.matrix.roomMessages(this.room, { dir: "b", limit: 100 });
    const wanted = JSON.stringify(sortKeys(row.outbox_content ?? {}));
    for (const event of page.events) {
      if (event.origin_server_ts < row.created_at.getTime() - 5000) break;
      if (event.type !== "m.room.message" || event.sender !== row.sender_matrix_id) continue;
      if (JSON.stringify(sortKeys(event.content)) !== wanted) continue;
      if (await findMessageByEvent(this.deps.sql, event.event_id)) continue;
      this.log.info({ message_id: row.id }, "a pending send was already in Matrix; not sending it twice");
      return { eventId: event.event_id };
    }
    return null;
  }

  /** Tells subscribers, once, that a send is accepted but not yet in Matrix, in its seq place. */
  private async announcePending(row: MessageRow) {
    if (this.announcedPending.has(row.id)) return;
    this.announcedPending.add(row.id);
    const view = toMessageView(row);
    this.deps.broadcast(this.channelId, { type: "message.created", seq: view.seq, message: view });
  }

  private settle(id: string, fn: (w: DeliveryWaiter) => void) {
    const waiters = this.waiters.get(id);
    if (!waiters) return;
    this.waiters.delete(id);
    for (const waiter of waiters) fn(waiter);
  }

  private async announceMessage(row: MessageRow, wasAnnouncedPending = false) {
    const view = toMessageView(row);
    // Subscribers who saw it pending get the confirmation as an update.
    this.deps.broadcast(this.channelId, { type: wasAnnouncedPending ? "message.updated" : "message.created", seq: view.seq, message: view });
    await this.deps.events.publish(Subjects.messageCreated, {
      event_id: `message.created:${row.id}`,
      channel_id: row.channel_id,
      message_id: row.id,
      seq: view.seq,
      matrix_event_id: row.matrix_event_id!,
      microdao_id: this.channel!.microdao_id,
      sender_id: row.sender_id,
      sender_type: row.sender_type,
      preview: row.content_preview,
      thread_id: row.thread_id,
      created_at: view.created_at,
    });
  }

  private async doIngestAll(events: MatrixEvent[]): Promise<void> {
    let next = 0;
    while (next < events.length) {
      // Echoes of our own sends, known from memory: their inbox rows go in one statement.
      const echoes: string[] = [];
      while (next < events.length && events[next]!.type === "m.room.message" && this.ownEchoes.has(events[next]!.event_id)) {
        echoes.push(events[next++]!.event_id);
      }
      if (echoes.length > 0) {
        await consumeInboxEvents(this.deps.sql, echoes);
        for (const eventId of echoes) this.ownEchoes.delete(eventId);
        continue;
      }
      await this.doIngest(events[next++]!);
    }
  }

  private async doIngest(event: MatrixEvent): Promise<void> {
    switch (event.type) {
      case "m.room.message":
      case ENCRYPTED_EVENT_TYPE:
        return this.ingestMessage(event);
      case "m.room.member":
        return this.ingestMembership(event);
      case "m.room.name":
      case "m.room.topic":
        return this.ingestRoomState(event);
    }
    const ingester = eventIngesters[event.type];
    if (ingester) return ingester(this.context, event);
    await consumeInboxEvent(this.deps.sql, event.event_id);
  }

  private async ingestMessage(event: MatrixEvent): Promise<void> {
    const { sql, matrix } = this.deps;
    const relation = event.content["m.relates_to"] as
      | { rel_type?: string; event_id?: string; "m.in_reply_to"?: { event_id?: string } }
      | undefined;
    // Our own sends come back from the homeserver: matched by event id, never indexed twice.
    if (this.ownEchoes.delete(event.event_id) || (await findMessageByEvent(sql, event.event_id))) {
      await consumeInboxEvent(sql, event.event_id);
      return;
    }
    // Matrix may hold a send whose confirmation we lost (the database failed after the send):
    // resending it with its txnId yields this very event id and marks the row sent, so the echo
    // is recognised instead of becoming a second message.
    if (this.outbox.length > 0 && fromMatrixUserId(event.sender, matrix.serverName).id.startsWith("matrix:") === false) {
      await this.pumpOutbox();
      if (await findMessageByEvent(sql, event.event_id)) {
        await consumeInboxEvent(sql, event.event_id);
        return;
      }
      if (this.outbox.length > 0) throw new Error("matrix is unavailable for pending sends; the echo waits in the inbox");
    }
    // An edit, say, is not a new message: its feature indexes it.
    // An encrypted reaction or other annotation is not a message (and cannot be read).
    if (event.type === ENCRYPTED_EVENT_TYPE && relation?.rel_type === "m.annotation") {
      await consumeInboxEvent(sql, event.event_id);
      return;
    }
    const relationIngester = relation?.rel_type ? relationIngesters[relation.rel_type] : undefined;
    if (relationIngester) return relationIngester(this.context, event);
    if (relation?.rel_type === "m.replace") {
      await consumeInboxEvent(sql, event.event_id);
      return;
    }
    const rawBody = typeof event.content.body === "string" ? event.content.body : "";
    const msgtype = typeof event.content.msgtype === "string" ? event.content.msgtype : "m.text";
    const inThread = relation?.rel_type === "m.thread" && relation.event_id ? await findMessageByEvent(sql, relation.event_id) : null;
    const threadRoot = inThread ? ((inThread.thread_id ? await findMessage(sql, this.channelId, inThread.thread_id) : inThread) ?? null) : null;
    // In a thread, m.in_reply_to is only a fallback for thread-less clients unless is_falling_back is false.
    const fallingBack = relation?.rel_type === "m.thread" && (relation as { is_falling_back?: boolean }).is_falling_back !== false;
    const parentEventId = fallingBack ? undefined : relation?.["m.in_reply_to"]?.event_id;
    const parent = parentEventId ? await findMessageByEvent(sql, parentEventId) : null;
    const sender = fromMatrixUserId(event.sender, matrix.serverName);
    const seq = this.seq + 1;
    const row = await insertMessage(
      sql,
      {
        id: Bun.randomUUIDv7(),
        channel_id: this.channelId,
        seq,
        matrix_event_id: event.event_id,
        matrix_type: event.type,
        sender_id: sender.id,
        sender_type: sender.type,
        sender_matrix_id: event.sender,
        sender_display_name: event.sender_display_name ?? null,
        content_preview: indexedPreview(this.channel, stripReplyFallback(rawBody)),
        content_type: event.type === ENCRYPTED_EVENT_TYPE ? ENCRYPTED_CONTENT_TYPE : (CONTENT_TYPES[msgtype] ?? "text"),
        msgtype: event.type === ENCRYPTED_EVENT_TYPE ? null : msgtype,
        thread_id: threadRoot?.channel_id === this.channelId ? threadRoot.id : null,
        reply_to: parent?.channel_id === this.channelId ? parent.id : null,
        delivery_state: "sent",
        outbox_content: null,
        created_at: new Date(event.origin_server_ts),
        media: mediaFromContent(event.content),
      },
      { consumingInboxEvent: event.event_id },
    );
    this.seq = seq;
    this.log.debug({ message_id: row.id, seq }, "indexed a message from matrix");
    await this.announceMessage(row);
  }

  /** Joins and leaves made in Matrix (by Element users, or kicks) update the member index. */
  private async ingestMembership(event: MatrixEvent): Promise<void> {
    const { sql, matrix } = this.deps;
    const target = event.state_key;
    const membership = event.content.membership;
    if (!target || isServiceUser(target, matrix.serverName) || (membership !== "join" && membership !== "leave" && membership !== "ban")) {
      await consumeInboxEvent(sql, event.event_id);
      return;
    }
    // A membership the room has moved past since (the echo of an invite's join that arrives
    // after a kick, say) must not undo the newer change: compare with the current state.
    const now = await matrix.getState(this.room, "m.room.member", target).catch(() => undefined);
    const inRoom = (m: unknown) => m === "join";
    if (now !== undefined && inRoom(now?.membership) !== inRoom(membership)) {
      await consumeInboxEvent(sql, event.event_id);
      return;
    }
    const who = fromMatrixUserId(target, matrix.serverName);
    const actor = fromMatrixUserId(event.sender, matrix.serverName);
    const displayName = typeof event.content.displayname === "string" ? event.content.displayname : null;
    const current = await findMember(sql, this.channelId, who.id);
    if (membership === "join") {
      if (current) {
        await consumeInboxEvent(sql, event.event_id);
        return;
      }
      const invite = await pendingInvite(sql, this.channelId, who.id);
      const member = await sql.begin(async (tx) => {
        const row = await upsertMember(
          tx,
          membershipRecord({
            channelId: this.channelId,
            memberId: who.id,
            matrixUserId: target,
            rights: rightsOrDefaults(who.id, invite),
            powerLevel: 0,
            invitedBy: invite?.invited_by ?? null,
            displayName,
          }),
        );
        await recordChannelEvent(tx, { channel_id: this.channelId, event_type: "member.joined", actor_id: who.id, target_id: who.id, metadata: { via: "matrix" } });
        await consumeInboxEvent(tx, event.event_id);
        return row;
      });
      this.announceJoin(member, "matrix");
      return;
    }
    if (!current) {
      await consumeInboxEvent(sql, event.event_id);
      return;
    }
    const kicked = event.sender !== target;
    const left = await sql.begin(async (tx) => {
      const row = await recordDeparture(tx, { channelId: this.channelId, memberId: who.id, actorId: actor.id, kicked, metadata: { via: "matrix", membership } });
      await consumeInboxEvent(tx, event.event_id);
      return row;
    });
    if (left) announceRemoval(this.context, left, kicked ? actor.id : null, "matrix");
  }

  /** Name and topic changes made in Matrix update the channel; our own changes echo as no-ops. */
  private async ingestRoomState(event: MatrixEvent): Promise<void> {
    const { sql, matrix } = this.deps;
    const channel = this.channel!;
    const patch: ChannelPatch = {};
    if (event.type === "m.room.name" && typeof event.content.name === "string" && event.content.name && event.content.name !== channel.name) {
      patch.name = event.content.name.slice(0, 255);
    }
    if (event.type === "m.room.topic") {
      const topic = typeof event.content.topic === "string" && event.content.topic !== "" ? event.content.topic : null;
      if (topic !== channel.topic) patch.topic = topic;
    }
    if (Object.keys(patch).length === 0) {
      await consumeInboxEvent(sql, event.event_id);
      return;
    }
    const actor = fromMatrixUserId(event.sender, matrix.serverName);
    const updated = await sql.begin(async (tx) => {
      const row = await updateChannel(tx, this.channelId, patch);
      await recordChannelEvent(tx, {
        channel_id: this.channelId,
        event_type: "channel.updated",
        actor_id: actor.id,
        metadata: { fields: Object.keys(patch), via: "matrix" },
      });
      await consumeInboxEvent(tx, event.event_id);
      return row;
    });
    this.channel = updated;
    this.deps.broadcast(this.channelId, { type: "channel.updated", channel: toChannelView(updated) });
    this.publishChannelUpdated(actor.id, Object.keys(patch), "matrix");
  }

  private publishChannelUpdated(actorId: string, fields: string[], via: "api" | "matrix") {
    this.deps.events.publish(Subjects.channelUpdated, {
      event_id: `channel.updated:${this.channelId}:${Bun.randomUUIDv7()}`,
      channel_id: this.channelId,
      microdao_id: this.channel!.microdao_id,
      updated_by: actorId,
      fields,
      via,
    });
  }

  private async joinPublic(memberId: string) {
    const { sql, matrix } = this.deps;
    if (await findMember(sql, this.channelId, memberId)) return;
    const matrixId = this.matrixId(memberId);
    await this.matrixCall(async () => {
      await matrix.ensureUser(matrixId);
      // A microdao channel's room is invite-only in Matrix; the creator's account (power 100)
      // lets in the microDAO member whom domain/rights.ts allowed to write.
      if (this.channel!.visibility !== "public") await matrix.invite(this.room, this.matrixId(this.channel!.created_by), matrixId);
      await matrix.join(this.room, matrixId);
    });
    const member = await sql.begin(async (tx) => {
      // Only users join on a first write (domain/rights.ts writeRight): the defaults make them members.
      const rights = rightsOrDefaults(memberId, null);
      const row = await upsertMember(tx, membershipRecord({ channelId: this.channelId, memberId, matrixUserId: matrixId, rights, powerLevel: 0, invitedBy: null }));
      await recordChannelEvent(tx, { channel_id: this.channelId, event_type: "member.joined", actor_id: memberId, target_id: memberId });
      return row;
    });
    this.announceJoin(member, "api");
  }

  private announceJoin(member: MemberRow, via: "api" | "matrix") {
    this.deps.broadcast(this.channelId, { type: "member.joined", member: toMemberView(member) });
    this.deps.events.publish(Subjects.memberJoined, {
      event_id: `member.joined:${member.id}:${member.joined_at.getTime()}`,
      channel_id: this.channelId,
      member_id: member.member_id,
      role: member.role,
      via,
    });
  }

  private async doInvite(cmd: InviteCommand): Promise<MemberRow> {
    const { sql, matrix } = this.deps;
    if (await findMember(sql, this.channelId, cmd.memberId)) {
      throw conflict("ALREADY_MEMBER", `${cmd.memberId} is already a member of this channel`);
    }
    const inviter = this.matrixId(cmd.inviterId);
    const invitee = this.matrixId(cmd.memberId);
    await this.matrixCall(async () => {
      await matrix.ensureUser(invitee);
      await matrix.invite(this.room, inviter, invitee);
      // DAARION users and agents are virtual users of the service: they accept at once.
      await matrix.join(this.room, invitee);
    });
    const powerLevel = cmd.role === "owner" ? 100 : cmd.role === "admin" ? 50 : 0;
    // The role's power goes into the room too, so Matrix and the index agree on who may do what.
    if (powerLevel > 0) await setUserPower(this.context, invitee, powerLevel);
    const member = await sql.begin(async (tx) => {
      const row = await upsertMember(
        tx,
        membershipRecord({ channelId: this.channelId, memberId: cmd.memberId, matrixUserId: invitee, rights: cmd, powerLevel, invitedBy: cmd.inviterId }),
      );
      await recordChannelEvent(tx, {
        channel_id: this.channelId,
        event_type: "member.invited",
        actor_id: cmd.inviterId,
        target_id: cmd.memberId,
        metadata: { role: cmd.role },
      });
      return row;
    });
    this.deps.broadcast(this.channelId, { type: "member.joined", member: toMemberView(member) });
    await this.deps.events.publish(Subjects.memberInvited, {
      event_id: `member.invited:${member.id}:${member.joined_at.getTime()}`,
      channel_id: this.channelId,
      member_id: cmd.memberId,
      invited_by: cmd.inviterId,
      role: cmd.role,
    });
    return member;
  }

  private async doInviteMatrixUser(cmd: InviteCommand): Promise<PendingInvite> {
    const { sql, matrix } = this.deps;
    if (await findMember(sql, this.channelId, cmd.memberId)) {
      throw conflict("ALREADY_MEMBER", `${cmd.memberId} is already a member of this channel`);
    }
    const target = cmd.memberId.slice("matrix:".length);
    await this.matrixCall(() => matrix.invite(this.room, this.matrixId(cmd.inviterId), target));
    const { inviterId: _inviter, memberId: _member, ...rights } = cmd;
    // The rights wait in the audit row; the join that comes back from Matrix applies them.
    await recordChannelEvent(sql, {
      channel_id: this.channelId,
      event_type: "member.invited",
      actor_id: cmd.inviterId,
      target_id: cmd.memberId,
      metadata: rights,
    });
    await this.deps.events.publish(Subjects.memberInvited, {
      event_id: `member.invited:${this.channelId}:${cmd.memberId}:${Date.now()}`,
      channel_id: this.channelId,
      member_id: cmd.memberId,
      invited_by: cmd.inviterId,
      role: cmd.role,
    });
    return { status: "invited", channel_id: this.channelId, member_id: cmd.memberId, matrix_user_id: target, role: cmd.role };
  }

  private async doUpdate(actorId: string, patch: ChannelPatch): Promise<ChannelRow> {
    const { sql, matrix } = this.deps;
    const channel = this.channel!;
    // Room state is changed by the creator's account, which holds power 100 in the room;
    // channel_events records who asked.
    const stateSender = this.matrixId(channel.created_by);
    await this.matrixCall(async () => {
      if (patch.name !== undefined) await matrix.sendState(this.room, stateSender, "m.room.name", "", { name: patch.name });
      if (patch.topic !== undefined) await matrix.sendState(this.room, stateSender, "m.room.topic", "", { topic: patch.topic ?? "" });
      if (patch.visibility !== undefined && patch.visibility !== channel.visibility) {
        await matrix.sendState(this.room, stateSender, "m.room.join_rules", "", { join_rule: joinRuleFor(patch.visibility) });
      }
    });
    const updated = await sql.begin(async (tx) => {
      const row = await updateChannel(tx, this.channelId, patch);
      await recordChannelEvent(tx, {
        channel_id: this.channelId,
        event_type: "channel.updated",
        actor_id: actorId,
        metadata: { fields: Object.keys(patch) },
      });
      return row;
    });
    this.channel = updated;
    this.deps.broadcast(this.channelId, { type: "channel.updated", channel: toChannelView(updated) });
    this.publishChannelUpdated(actorId, Object.keys(patch), "api");
    if (updated.visibility !== channel.visibility) await this.closeUnreadableSockets(updated);
    return updated;
  }

  /**
   * A channel made private (or microdao) ends the sockets of those who could read it only while
   * it was open, by the rule of readableChannel: a member's can_read decides; a non-member of a
   * microdao channel may read it when their token lists its microDAO.
   */
  private async closeUnreadableSockets(channel: ChannelRow) {
    if (channel.visibility === "public" || !this.deps.sockets) return;
    const members = new Map((await listMembers(this.deps.sql, this.channelId)).map((m) => [m.member_id, m]));
    this.deps.sockets.revokeUnless(
      this.channelId,
      (memberId, microdaos) => {
        const member = members.get(memberId);
        return member ? member.can_read : channel.visibility === "microdao" && microdaos.includes(channel.microdao_id);
      },
      `channel is now ${channel.visibility}`,
    );
  }

  private async matrixCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toUpstreamError(err, "the Matrix homeserver refused the change");
    }
  }
}

/** Homeserver failures become a clear 502 for the caller; the errcode is kept, the details logged. */
function toUpstreamError(err: unknown, message: string): AppError {
  if (err instanceof AppError) return err;
  const errcode = err instanceof MatrixError ? err.errcode : "M_UNKNOWN";
  return new AppError(502, "MATRIX_UNAVAILABLE", `${message} (${errcode})`);
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

