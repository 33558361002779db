import type { Sql, Tx } from "../store/db.ts";
import { CHANNEL_ROOM_EVENT_POWER } from "../domain/calls.ts";
import {
  MatrixError,
  joinRuleFor,
  parseMxcUri,
  type CreateRoomRequest,
  type OutgoingEvent,
  type SentEvents,
  type EphemeralEvent,
  type DownloadedMedia,
  type MatrixBackend,
  type MatrixEvent,
  type RoomMessagesPage,
  type RoomMessagesRequest,
  type StateEntry,
  type SyncBatch,
  type TurnServer,
  type UploadedMedia,
} from "./port.ts";
import { STREAM_WRITE_LOCK, insertInStreamOrder, parseMessagesToken, parseSince, randomToken, toEvent, type EventRow, type Row } from "./local/rows.ts";
import { newEventId, plainRows, plainSendCtes, sendsInIndexStatement, type PlainBatch } from "./local/plain-sends.ts";
import { insertEvent, membershipOf, powerOf, refuseDuplicateAnnotation, requireMembership, requireRoom, stateContent } from "./local/room-state.ts";
import { SyncWakeups } from "./local/wakeups.ts";
import { groupCommit } from "../store/group-commit.ts";
import { turnCredentials, type TurnConfig } from "./local/turn.ts";
import { previewUrl, type UrlPreviewOptions } from "./local/url-preview.ts";

const SYNC_BATCH_LIMIT = 500;
// Ephemeral events live only in memory, like a homeserver's typing stream; a sync this far
// behind has missed some, as it would on Synapse after a restart.
const EPHEMERAL_LOG_SIZE = 1000;

/**
 * A homeserver in the service's own database, for running without Synapse. It keeps the
 * rules the service relies on: membership gates sending, inviting and joining; aliases are
 * unique; a txnId always maps to one event; the sync stream is totally ordered.
 * It is single-process: sync wake-ups are in-process notifications.
 */
export class LocalMatrixBackend implements MatrixBackend {
  readonly kind = "local" as const;
  private readonly wakeups = new SyncWakeups();
  /** Plain batches of several rooms at the same moment, in one statement (store/group-commit.ts). */
  private readonly sendPlainTogether = groupCommit<PlainBatch, string[] | null>(async (batches) => {
    const sent = await this.insertIfPlain(batches);
    if (sent) return sent;
    // One of them needs the closer look: each alone, so the others still go in one statement.
    if (batches.length > 1) throw new NotPlainTogether();
    return [null];
  });
  private closed = false;
  /** Plain sends written by the index's own statement (channel/sends-in-index.ts). */
  readonly sendsInIndex = sendsInIndexStatement(() => !this.closed, () => this.wakeups.notify());
  /** Sync tokens from another run of this process name another ephemeral stream: they restart at its head. */
  private readonly epoch = randomToken(6).replace(/[^A-Za-z0-9]/g, "x");
  private ephemeralLog: Array<{ pos: number; event: EphemeralEvent }> = [];
  private ephemeralHead = 0;
  /** room -> typing user -> the timer that ends it. */
  private readonly typing = new Map<string, Map<string, ReturnType<typeof setTimeout>>>();
  /**
   * Users known to exist. Users are never removed and an existing user's display name is not
   * changed here, so a known user needs no statement: this saves a round trip on every send.
   */
  private readonly knownUsers = new Set<string>();

  constructor(
    private readonly sql: Sql,
    readonly serverName: string,
    /** TURN_URIS and TURN_SHARED_SECRET, for /voip/turnServer; null: none configured. */
    private readonly turn: TurnConfig | null = null,
    /** The built-in fetcher's guard and limits (LINK_PREVIEW_*); null: previews off. */
    private readonly previews: UrlPreviewOptions | null = null,
  ) {}

  async ensureUser(userId: string, displayName: string | null = null): Promise<void> {
    this.assertOpen();
    if (this.knownUsers.has(userId)) return;
    await this.sql`
      insert into local_matrix_users (user_id, display_name) values (${userId}, ${displayName})
      on conflict (user_id) do nothing`;
    this.knownUsers.add(userId);
  }

  async createRoom(req: CreateRoomRequest): Promise<{ roomId: string; alias: string }> {
    this.assertOpen();
    let roomId = `!${randomToken(18)}:${this.serverName}`;
    const alias = `#${req.aliasLocalpart}:${this.serverName}`;
    await this.write(async (tx) => {
      const [taken] = await tx`
        select a.room_id, r.creator from local_matrix_aliases a join local_matrix_rooms r using (room_id) where a.alias = ${alias}`;
      if (taken?.creator === req.creator) {
        roomId = taken.room_id;
        return;
      }
      if (taken) throw new MatrixError("M_ROOM_IN_USE", "Room alias already taken", 400);
      await tx`insert into local_matrix_rooms (room_id, creator) values (${roomId}, ${req.creator})`;
      await tx`insert into local_matrix_aliases (alias, room_id) values (${alias}, ${roomId})`;
      const state: Array<[string, string, Record<string, unknown>]> = [
        ["m.room.create", "", req.roomType ? { creator: req.creator, room_version: "10", type: req.roomType } : { creator: req.creator, room_version: "10" }],
        ["m.room.member", req.creator, { membership: "join" }],
        ["m.room.power_levels", "", { users: { [req.creator]: 100 }, users_default: 0, events_default: 0, state_default: 50, ...(req.roomType ? {} : { events: CHANNEL_ROOM_EVENT_POWER }) }],
        ["m.room.join_rules", "", { join_rule: joinRuleFor(req.visibility) }],
        ["m.room.history_visibility", "", { history_visibility: "shared" }],
        ["m.room.canonical_alias", "", { alias }],
        ["m.room.name", "", { name: req.name }],
      ];
      if (req.topic) state.push(["m.room.topic", "", { topic: req.topic }]);
      if (req.isEncrypted) state.push(["m.room.encryption", "", { algorithm: "m.megolm.v1.aes-sha2" }]);
      for (const [type, stateKey, content] of state) {
        await insertEvent(tx, roomId, req.creator, type, content, { stateKey });
      }
    });
    return { roomId, alias };
  }

  async resolveAlias(alias: string): Promise<string | null> {
    this.assertOpen();
    const [row] = await this.sql`select room_id from local_matrix_aliases where alias = ${alias}`;
    return row ? (row.room_id as string) : null;
  }

  async sendState(roomId: string, asUser: string, type: string, stateKey: string, content: Record<string, unknown>) {
    this.assertOpen();
    const eventId = await this.write(async (tx) => {
      await requireMembership(tx, roomId, asUser, ["join"]);
      return insertEvent(tx, roomId, asUser, type, content, { stateKey });
    });
    return { eventId };
  }

  async invite(roomId: string, asUser: string, target: string): Promise<void> {
    this.assertOpen();
    await this.write(async (tx) => {
      await requireMembership(tx, roomId, asUser, ["join"]);
      const current = await membershipOf(tx, roomId, target);
      if (current === "join" || current === "invite") return;
      await insertEvent(tx, roomId, asUser, "m.room.member", { membership: "invite" }, { stateKey: target });
    });
  }

  async join(roomId: string, userId: string): Promise<void> {
    this.assertOpen();
    await this.write(async (tx) => {
      await requireRoom(tx, roomId);
      const current = await membershipOf(tx, roomId, userId);
      if (current === "join") return;
      if (current !== "invite") {
        const [rule] = await tx`
          select content->>'join_rule' as join_rule from local_matrix_state
          where room_id = ${roomId} and type = 'm.room.join_rules' and state_key = ''`;
        if (rule?.join_rule !== "public") throw new MatrixError("M_FORBIDDEN", "You are not invited to this room.", 403);
      }
      await insertEvent(tx, roomId, userId, "m.room.member", { membership: "join" }, { stateKey: userId });
    });
  }

  async kick(roomId: string, asUser: string, target: string, reason?: string): Promise<void> {
    this.assertOpen();
    await this.write(async (tx) => {
      await requireMembership(tx, roomId, asUser, ["join"]);
      const current = await membershipOf(tx, roomId, target);
      if (current !== "join" && current !== "invite") throw new MatrixError("M_FORBIDDEN", "The target user is not in the room", 403);
      // As in Synapse's auth rules: the kick level, and strictly more power than the target.
      const levels = await stateContent(tx, roomId, "m.room.power_levels", "");
      const power = (user: string) => powerOf(levels, user);
      const kickLevel = typeof levels?.kick === "number" ? levels.kick : 50;
      if (power(asUser) < kickLevel || power(asUser) <= power(target)) {
        throw new MatrixError("M_FORBIDDEN", "You don't have permission to kick this user", 403);
      }
      await insertEvent(tx, roomId, asUser, "m.room.member", reason ? { membership: "leave", reason } : { membership: "leave" }, { stateKey: target });
    });
  }

  async leave(roomId: string, userId: string): Promise<void> {
    this.assertOpen();
    await this.write(async (tx) => {
      await requireRoom(tx, roomId);
      const current = await membershipOf(tx, roomId, userId);
      if (current !== "join" && current !== "invite") return;
      await insertEvent(tx, roomId, userId, "m.room.member", { membership: "leave" }, { stateKey: userId });
    });
  }

  async getState(roomId: string, type: string, stateKey: string): Promise<Record<string, unknown> | null> {
    this.assertOpen();
    await requireRoom(this.sql, roomId);
    return stateContent(this.sql, roomId, type, stateKey);
  }

  async getStateEvents(roomId: string, type: string): Promise<StateEntry[]> {
    this.assertOpen();
    await requireRoom(this.sql, roomId);
    const rows = await this.sql`
      select s.state_key, e.sender, s.content from local_matrix_state s join local_matrix_events e using (event_id)
      where s.room_id = ${roomId} and s.type = ${type} order by s.state_key`;
    return rows.map((r) => ({ stateKey: r.state_key as string, sender: r.sender as string, content: r.content as Record<string, unknown> }));
  }

  async sendEvent(roomId: string, asUser: string, type: string, content: Record<string, unknown>, txnId: string) {
    this.assertOpen();
    const eventId = await this.write(async (tx) => {
      const [seen] = await tx`select event_id from local_matrix_events where txn_id = ${txnId}`;
      if (seen) return seen.event_id as string;
      await requireMembership(tx, roomId, asUser, ["join"]);
      if (type === "m.reaction") await refuseDuplicateAnnotation(tx, roomId, asUser, content);
      return insertEvent(tx, roomId, asUser, type, content, { txnId });
    });
    return { eventId };
  }

  /**
   * One transaction (and one turn of the stream lock) for the whole batch, with the same
   * rules as sendEvent: a known txnId yields its event, a sender must be joined. The prefix
   * before the first refusal is committed; the refusal is the answer's error.
   * The checks run before the stream lock, and the lock is taken by the INSERT itself: every
   * room's sends queue on that one lock, so it is held for two round trips (insert, commit)
   * rather than four. The room's own sends are serialised by its channel actor, so the
   * checks cannot go stale in between.
   */
  async sendEvents(roomId: string, events: OutgoingEvent[]): Promise<SentEvents> {
    if (events.length === 0) return { eventIds: [] };
    let eventIds: string[] = [];
    let error: unknown;
    try {
      this.assertOpen();
      const sent = await this.sendAllIfPlain(roomId, events);
      if (sent) return { eventIds: sent };
      await this.sql.begin(async (tx) => {
        const txnIds = events.map((e) => e.txnId);
        const senders = [...new Set(events.map((e) => e.asUser))];
        // What the rules need, in one round trip: the room, the txnIds already used, who is joined.
        const [facts] = await tx`
          select exists (select 1 from local_matrix_rooms where room_id = ${roomId}) as room_exists,
                 (select coalesce(json_object_agg(txn_id, event_id), '{}'::json) from local_matrix_events
                   where txn_id in ${tx(txnIds)}) as known,
                 (select coalesce(json_agg(state_key), '[]'::json) from local_matrix_state
                   where room_id = ${roomId} and type = 'm.room.member' and state_key in ${tx(senders)}
                     and content->>'membership' = 'join') as joined`;
        if (!facts?.room_exists) throw new MatrixError("M_NOT_FOUND", "Unknown room", 404);
        const known = new Map(Object.entries(facts.known as Record<string, string>));
        const joined = new Set(facts.joined as string[]);
        const fresh: EventRow[] = [];
        const now = Date.now();
        for (const event of events) {
          const seen = known.get(event.txnId);
          if (seen) {
            eventIds.push(seen);
            continue;
          }
          if (!joined.has(event.asUser)) {
            error = new MatrixError("M_FORBIDDEN", `User ${event.asUser} not in room ${roomId}`, 403);
            break;
          }
          if (event.type === "m.reaction") {
            try {
              await refuseDuplicateAnnotation(tx, roomId, event.asUser, event.content);
            } catch (refusal) {
              error = refusal;
              break;
            }
          }
          const eventId = newEventId();
          known.set(event.txnId, eventId);
          eventIds.push(eventId);
          fresh.push([fresh.length, eventId, roomId, event.asUser, event.type, JSON.stringify(event.content), now, event.txnId]);
        }
        if (fresh.length > 0) await insertInStreamOrder(tx, fresh);
      });
      this.wakeups.notify();
    } catch (err) {
      // Nothing of the batch was committed.
      return { eventIds: [], error: err };
    }
    return error === undefined ? { eventIds } : { eventIds, error };
  }

  /**
   * The usual batch (new txnIds, every sender joined, no reaction to check) in one statement,
   * hence one implicit transaction and one round trip, the stream lock taken inside it as above.
   * Batches of other rooms sent at the same moment go in the same statement (store/group-commit.ts):
   * every room's sends queue on the one stream lock anyway. When any rule needs a closer look
   * it inserts nothing and answers null, and sendEvents takes the path that finds the first refusal.
   */
  private sendAllIfPlain(roomId: string, events: OutgoingEvent[]): Promise<string[] | null> {
    if (events.some((e) => e.type === "m.reaction")) return Promise.resolve(null);
    return this.sendPlainTogether({ roomId, events });
  }

  private async insertIfPlain(batches: readonly PlainBatch[]): Promise<Array<string[]> | null> {
    const { rows, eventIds } = plainRows(batches);
    const [result] = await this.sql`
      with ${plainSendCtes(this.sql, batches, rows, this.sql`plain.ok`)}
      select count(*)::int as n from local_sent`;
    if (result?.n !== rows.length) return null;
    this.wakeups.notify();
    return eventIds;
  }

  async redact(roomId: string, asUser: string, eventId: string, txnId: string, reason?: string) {
    this.assertOpen();
    const redactionId = await this.write(async (tx) => {
      const [seen] = await tx`select event_id from local_matrix_events where txn_id = ${txnId}`;
      if (seen) return seen.event_id as string;
      await requireMembership(tx, roomId, asUser, ["join"]);
      const [target] = await tx`select 1 from local_matrix_events where room_id = ${roomId} and event_id = ${eventId}`;
      if (!target) throw new MatrixError("M_NOT_FOUND", "Event not found.", 404);
      // Like a homeserver: the redacted event keeps its id and type, and loses its content.
      await tx`update local_matrix_events set content = '{}'::jsonb where event_id = ${eventId}`;
      return insertEvent(tx, roomId, asUser, "m.room.redaction", reason ? { reason, redacts: eventId } : { redacts: eventId }, { txnId });
    });
    return { eventId: redactionId };
  }

  async setTyping(roomId: string, asUser: string, typing: boolean, timeoutMs: number): Promise<void> {
    this.assertOpen();
    await this.sql.begin((tx) => requireMembership(tx, roomId, asUser, ["join"]));
    const room = this.typing.get(roomId) ?? new Map<string, ReturnType<typeof setTimeout>>();
    this.typing.set(roomId, room);
    const wasTyping = room.has(asUser);
    clearTimeout(room.get(asUser));
    if (typing) {
      const timer = setTimeout(() => {
        if (room.get(asUser) !== timer) return;
        room.delete(asUser);
        this.emitTyping(roomId, room);
      }, timeoutMs);
      (timer as { unref?: () => void }).unref?.();
      room.set(asUser, timer);
    } else {
      room.delete(asUser);
    }
    // Like Synapse: a renewed timeout is not news, a change of who types is.
    if (wasTyping !== typing) this.emitTyping(roomId, room);
  }

  async setReadMarker(roomId: string, asUser: string, eventId: string): Promise<void> {
    this.assertOpen();
    await this.sql.begin(async (tx) => {
      await requireMembership(tx, roomId, asUser, ["join"]);
      const [target] = await tx`select 1 from local_matrix_events where room_id = ${roomId} and event_id = ${eventId}`;
      if (!target) throw new MatrixError("M_NOT_FOUND", "Event not found.", 404);
    });
    this.emitEphemeral({ room_id: roomId, type: "m.receipt", content: { [eventId]: { "m.read": { [asUser]: { ts: Date.now() } } } } });
  }

  async turnServer(asUser: string): Promise<TurnServer | null> {
    this.assertOpen();
    return this.turn ? turnCredentials(this.turn, asUser, Date.now()) : null;
  }

  async getEvent(roomId: string, eventId: string): Promise<MatrixEvent> {
    this.assertOpen();
    const [row] = await this.sql<Row[]>`
      select * from local_matrix_events where room_id = ${roomId} and event_id = ${eventId}`;
    if (!row) throw new MatrixError("M_NOT_FOUND", "Event not found.", 404);
    return toEvent(row);
  }

  async roomMessages(roomId: string, opts: RoomMessagesRequest): Promise<RoomMessagesPage> {
    this.assertOpen();
    await requireRoom(this.sql, roomId);
    const limit = Math.max(1, Math.min(opts.limit, 1000));
    const from = opts.from ? parseMessagesToken(opts.from) : null;
    const rows =
      opts.dir === "b"
        ? await this.sql<Row[]>`
            select * from local_matrix_events where room_id = ${roomId} and (${from}::bigint is null or stream_ordering < ${from})
            order by stream_ordering desc limit ${limit}`
        : await this.sql<Row[]>`
            select * from local_matrix_events where room_id = ${roomId} and stream_ordering > ${from ?? 0}
            order by stream_ordering limit ${limit}`;
    // Like Synapse: a short page means the timeline ends there, so no `end` to follow.
    const last = rows.at(-1);
    return { events: rows.map(toEvent), end: last && rows.length === limit ? `t${last.stream_ordering}` : null };
  }

  async uploadMedia(asUser: string, data: Uint8Array, contentType: string, filename: string | null): Promise<UploadedMedia> {
    this.assertOpen();
    return { contentUri: await this.storeMedia(randomToken(18), asUser, data, contentType, filename) };
  }

  /** Stored once under `mediaId`: the same id again (a content-addressed one) writes nothing. */
  private async storeMedia(mediaId: string, uploader: string, data: Uint8Array, contentType: string, filename: string | null): Promise<string> {
    await this.sql`
      insert into local_matrix_media (media_id, uploader, content_type, filename, size, data)
      values (${mediaId}, ${uploader}, ${contentType}, ${filename}, ${data.byteLength}, ${Buffer.from(data.buffer, data.byteOffset, data.byteLength)})
      on conflict (media_id) do nothing`;
    return `mxc://${this.serverName}/${mediaId}`;
  }

  async downloadMedia(mxcUri: string): Promise<DownloadedMedia> {
    this.assertOpen();
    const parsed = parseMxcUri(mxcUri);
    // Like a homeserver that does not federate: media of other servers is simply not there.
    if (!parsed || parsed.serverName !== this.serverName) throw new MatrixError("M_NOT_FOUND", "Not found", 404);
    const [row] = await this.sql<{ content_type: string; size: string; data: Buffer }[]>`
      select content_type, size, data from local_matrix_media where media_id = ${parsed.mediaId}`;
    if (!row) throw new MatrixError("M_NOT_FOUND", "Not found", 404);
    return { body: new Blob([new Uint8Array(row.data)]).stream(), contentType: row.content_type, size: Number(row.size) };
  }

  /** preview_url done here, as Synapse does it (src/matrix/local/url-preview.ts); the page's image goes into the media table. */
  async previewUrl(url: string): Promise<Record<string, unknown>> {
    this.assertOpen();
    if (!this.previews) throw new MatrixError("M_UNKNOWN", "URL previews are not enabled", 403);
    // A preview's image goes under an id made from its bytes: fetched again (another page, or
    // the same one once the preview cache expired), it is stored once.
    const store = (data: Uint8Array, type: string) =>
      this.storeMedia(`preview-${new Bun.CryptoHasher("sha256").update(`${type}\n`).update(data).digest("hex").slice(0, 40)}`, `@url-preview:${this.serverName}`, data, type, null);
    return previewUrl(url, this.previews, store);
  }

  async sync(since: string | null, timeoutMs: number, signal: AbortSignal): Promise<SyncBatch> {
    if (since === null) {
      const [row] = await this.sql`select coalesce(max(stream_ordering), 0)::bigint as pos from local_matrix_events`;
      return { nextBatch: this.token(Number(row?.pos ?? 0), this.ephemeralHead), events: [] };
    }
    const { from, epoch, ephemeralFrom } = parseSince(since);
    const ephemeralSince = epoch === this.epoch ? ephemeralFrom : this.ephemeralHead;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.assertOpen();
      // Register before reading, so a commit between the read and the wait still wakes us.
      const woken = this.wakeups.next();
      const rows = await this.sql<Row[]>`
        select * from local_matrix_events where stream_ordering > ${from}
        order by stream_ordering limit ${SYNC_BATCH_LIMIT}`;
      const ephemeral = this.ephemeralLog.filter((e) => e.pos > ephemeralSince);
      const remaining = deadline - Date.now();
      if (rows.length > 0 || ephemeral.length > 0 || remaining <= 0 || signal.aborted) {
        woken.cancel();
        const last = rows.at(-1);
        return {
          nextBatch: this.token(last ? Number(last.stream_ordering) : from, ephemeral.at(-1)?.pos ?? ephemeralSince),
          events: rows.map(toEvent),
          ephemeral: ephemeral.map((e) => e.event),
        };
      }
      await woken.wait(remaining, signal);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const room of this.typing.values()) for (const timer of room.values()) clearTimeout(timer);
    this.typing.clear();
    this.wakeups.notify();
  }

  private token(pos: number, ephemeralPos: number): string {
    return `s${pos}_${this.epoch}_${ephemeralPos}`;
  }

  private emitTyping(roomId: string, room: Map<string, unknown>) {
    this.emitEphemeral({ room_id: roomId, type: "m.typing", content: { user_ids: [...room.keys()] } });
  }

  private emitEphemeral(event: EphemeralEvent) {
    this.ephemeralLog.push({ pos: ++this.ephemeralHead, event });
    if (this.ephemeralLog.length > EPHEMERAL_LOG_SIZE) this.ephemeralLog = this.ephemeralLog.slice(-EPHEMERAL_LOG_SIZE);
    this.wakeups.notify();
  }

  private async write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const result = await this.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${STREAM_WRITE_LOCK})`;
      return fn(tx);
    });
    this.wakeups.notify();
    return result as T;
  }

  private assertOpen() {
    if (this.closed) throw new MatrixError("M_UNAVAILABLE", "local Matrix backend is closed", 503);
  }

  /** The local homeserver is the service's own database; the caller bounds the wait. */
  async ping(): Promise<void> {
    await this.sql`select 1`;
  }
}

/** A merged batch that is not plain as a whole: its rooms' batches are tried one by one. */
class NotPlainTogether extends Error {}
