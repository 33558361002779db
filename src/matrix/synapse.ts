import { TimeoutError } from "../deadline.ts";
import type { Logger } from "../log.ts";
import { backoffAtLeast, backoffDelay, type BackoffPolicy } from "../backoff.ts";
import type { EventTypes } from "../domain/event-types.ts";
import { CHANNEL_ROOM_EVENT_POWER } from "../domain/calls.ts";
import {
  MatrixError,
  joinRuleFor,
  parseMxcUri,
  presetFor,
  sendEventsInTurn,
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
import { abortableSleep, localpartOf, parseJson, redactPath, retryAfterMs, toEvent, type Json } from "./synapse-wire.ts";

export interface SynapseOptions {
  baseUrl: string;
  serverName: string;
  asToken: string;
  /** A namespaced user that joins every channel room and runs /sync (Synapse refuses /sync as the AS sender). */
  syncUserId: string;
  /** How long one call may keep retrying 429s, 5xx and network errors before giving up. */
  retryBudgetMs: number;
  /** Events per room in one /sync; a busier gap comes back `limited` and is backfilled. */
  syncTimelineLimit?: number;
  /** What /sync and backfills ask for: the types the features handle (features/index.ts). */
  eventTypes: EventTypes;
  log: Logger;
}


const CS = "/_matrix/client/v3";

interface CallOptions {
  asUser?: string;
  body?: unknown;
  /** A raw body (a media upload) instead of JSON. */
  bytes?: { data: Uint8Array; contentType: string };
  query?: Record<string, string>;
  signal?: AbortSignal;
  retry?: boolean;
  timeoutMs?: number;
}
const BACKFILL_PAGE = 100;
const BACKFILL_MAX_PAGES = 50;


/**
 * The client-server API, spoken as an application service over plain fetch. It masquerades
 * as namespaced users with `user_id`, registers them on first use, and sends with
 * PUT …/send/{type}/{txnId} so a retry never makes a second event. 429s wait at least
 * retry_after_ms; 5xx and network errors are retried with capped, jittered backoff within a
 * time budget; any other 4xx is final.
 */
export class SynapseMatrixBackend implements MatrixBackend {
  readonly kind = "synapse" as const;
  readonly serverName: string;
  private readonly registered = new Set<string>();
  private readonly displayNames = new Map<string, string | null>();
  private readonly inFlight = new AbortController();
  private syncFilter: string;

  constructor(private readonly opts: SynapseOptions) {
    this.serverName = opts.serverName;
    this.syncFilter = JSON.stringify({
      presence: { types: [] },
      account_data: { types: [] },
      room: {
        timeline: { types: opts.eventTypes.timeline, limit: opts.syncTimelineLimit ?? 100 },
        state: { types: opts.eventTypes.state, lazy_load_members: true },
        ephemeral: { types: opts.eventTypes.ephemeral },
        account_data: { types: [] },
      },
    });
  }

  async ensureUser(userId: string, displayName: string | null = null): Promise<void> {
    if (!this.registered.has(userId)) {
      try {
        await this.call("POST", `${CS}/register`, {
          body: { type: "m.login.application_service", username: localpartOf(userId), inhibit_login: true },
        });
      } catch (err) {
        if (!(err instanceof MatrixError && err.errcode === "M_USER_IN_USE")) throw err;
      }
      this.registered.add(userId);
    }
    if (displayName) {
      await this.call("PUT", `${CS}/profile/${enc(userId)}/displayname`, { asUser: userId, body: { displayname: displayName } });
    }
  }

  async createRoom(req: CreateRoomRequest): Promise<{ roomId: string; alias: string }> {
    await this.ensureUser(this.opts.syncUserId);
    const initialState: Json[] = [
      { type: "m.room.join_rules", state_key: "", content: { join_rule: joinRuleFor(req.visibility) } },
      { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "shared" } },
    ];
    if (req.isEncrypted) {
      initialState.push({ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } });
    }
    const body: Json = {
      room_alias_name: req.aliasLocalpart,
      name: req.name,
      preset: presetFor(req.visibility),
      visibility: req.visibility === "public" ? "public" : "private",
      initial_state: initialState,
      invite: [this.opts.syncUserId],
      is_direct: req.isDirect,
      // The creator already holds full power (in room v12 it must not be listed).
      // Spaces keep Synapse's defaults; channel rooms open call membership to members.
      power_level_content_override: req.roomType ? { users: { [this.opts.syncUserId]: 50 } } : { users: { [this.opts.syncUserId]: 50 }, events: CHANNEL_ROOM_EVENT_POWER },
    };
    if (req.topic) body.topic = req.topic;
    if (req.roomType) body.creation_content = { type: req.roomType };
    const alias = `#${req.aliasLocalpart}:${this.serverName}`;
    let roomId: string;
    try {
      roomId = (await this.call("POST", `${CS}/createRoom`, { asUser: req.creator, body })).room_id as string;
    } catch (err) {
      // A creation whose answer was lost (a crash, a dropped connection): the alias names its room.
      const earlier = err instanceof MatrixError && err.errcode === "M_ROOM_IN_USE" ? await this.roomCreatedBy(alias, req.creator) : null;
      if (!earlier) throw err;
      roomId = earlier;
    }
    // The sync user sits in every channel room, so /sync sees what Element users write there.
    await this.join(roomId, this.opts.syncUserId);
    return { roomId, alias };
  }

  async resolveAlias(alias: string): Promise<string | null> {
    try {
      return (await this.call("GET", `${CS}/directory/room/${enc(alias)}`)).room_id as string;
    } catch (err) {
      if (err instanceof MatrixError && err.errcode === "M_NOT_FOUND") return null;
      throw err;
    }
  }

  /** The room `alias` names, when `creator` made it (its m.room.create is theirs); else null. */
  private async roomCreatedBy(alias: string, creator: string): Promise<string | null> {
    const roomId = await this.resolveAlias(alias);
    if (!roomId) return null;
    const state = (await this.call("GET", `${CS}/rooms/${enc(roomId)}/state`, { asUser: creator }).catch(() => [])) as unknown as Json[];
    const create = Array.isArray(state) ? state.find((e) => e.type === "m.room.create") : undefined;
    return create?.sender === creator ? roomId : null;
  }

  async sendState(roomId: string, asUser: string, type: string, stateKey: string, content: Record<string, unknown>) {
    const res = await this.call("PUT", `${CS}/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`, { asUser, body: content });
    return { eventId: res.event_id as string };
  }

  async invite(roomId: string, asUser: string, target: string): Promise<void> {
    try {
      await this.call("POST", `${CS}/rooms/${enc(roomId)}/invite`, { asUser, body: { user_id: target } });
    } catch (err) {
      // Inviting someone already invited or joined is refused by Synapse; for us it is done.
      if (err instanceof MatrixError && err.errcode === "M_FORBIDDEN") {
        const membership = await this.membership(roomId, target, asUser);
        if (membership === "join" || membership === "invite") return;
      }
      throw err;
    }
  }

  async join(roomId: string, userId: string): Promise<void> {
    await this.ensureUser(userId);
    await this.call("POST", `${CS}/join/${enc(roomId)}`, { asUser: userId, body: {} });
  }

  async kick(roomId: string, asUser: string, target: string, reason?: string): Promise<void> {
    await this.call("POST", `${CS}/rooms/${enc(roomId)}/kick`, { asUser, body: reason ? { user_id: target, reason } : { user_id: target } });
  }

  async leave(roomId: string, userId: string): Promise<void> {
    try {
      await this.call("POST", `${CS}/rooms/${enc(roomId)}/leave`, { asUser: userId, body: {} });
    } catch (err) {
      // Leaving a room one is no longer in is done, as far as we are concerned.
      if (err instanceof MatrixError && err.errcode === "M_FORBIDDEN") {
        const membership = await this.membership(roomId, userId, this.opts.syncUserId);
        if (membership !== "join" && membership !== "invite") return;
      }
      throw err;
    }
  }

  async getState(roomId: string, type: string, stateKey: string, asUser?: string): Promise<Record<string, unknown> | null> {
    try {
      return await this.call("GET", `${CS}/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`, { asUser: asUser ?? this.opts.syncUserId });
    } catch (err) {
      if (err instanceof MatrixError && err.errcode === "M_NOT_FOUND") return null;
      throw err;
    }
  }

  async getStateEvents(roomId: string, type: string, asUser?: string): Promise<StateEntry[]> {
    const state = (await this.call("GET", `${CS}/rooms/${enc(roomId)}/state`, { asUser: asUser ?? this.opts.syncUserId })) as unknown as Json[];
    return state
      .filter((e) => e.type === type && typeof e.state_key === "string")
      .map((e) => ({ stateKey: e.state_key as string, sender: e.sender as string, content: (e.content ?? {}) as Record<string, unknown> }));
  }

  async sendEvent(roomId: string, asUser: string, type: string, content: Record<string, unknown>, txnId: string) {
    const res = await this.call("PUT", `${CS}/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txnId)}`, { asUser, body: content });
    return { eventId: res.event_id as string };
  }

  sendEvents(roomId: string, events: OutgoingEvent[]): Promise<SentEvents> {
    return sendEventsInTurn((...args) => this.sendEvent(...args), roomId, events);
  }

  async redact(roomId: string, asUser: string, eventId: string, txnId: string, reason?: string) {
    const res = await this.call("PUT", `${CS}/rooms/${enc(roomId)}/redact/${enc(eventId)}/${enc(txnId)}`, {
      asUser,
      body: reason ? { reason } : {},
    });
    return { eventId: res.event_id as string };
  }

  async setTyping(roomId: string, asUser: string, typing: boolean, timeoutMs: number): Promise<void> {
    await this.call("PUT", `${CS}/rooms/${enc(roomId)}/typing/${enc(asUser)}`, {
      asUser,
      body: typing ? { typing: true, timeout: timeoutMs } : { typing: false },
    });
  }

  async setReadMarker(roomId: string, asUser: string, eventId: string): Promise<void> {
    await this.call("POST", `${CS}/rooms/${enc(roomId)}/read_markers`, {
      asUser,
      body: { "m.fully_read": eventId, "m.read": eventId },
    });
  }

  async turnServer(asUser: string): Promise<TurnServer | null> {
    await this.ensureUser(asUser);
    const res = await this.call("GET", `${CS}/voip/turnServer`, { asUser });
    const uris = Array.isArray(res.uris) ? (res.uris as unknown[]).filter((u): u is string => typeof u === "string") : [];
    // No turn_uris in the homeserver's config: Synapse answers {}.
    if (uris.length === 0 || typeof res.username !== "string" || typeof res.password !== "string") return null;
    return { username: res.username, password: res.password, uris, ttl: Math.floor(Number(res.ttl) || 0) };
  }

  async getEvent(roomId: string, eventId: string, asUser?: string): Promise<MatrixEvent> {
    const res = await this.call("GET", `${CS}/rooms/${enc(roomId)}/event/${enc(eventId)}`, { asUser: asUser ?? this.opts.syncUserId });
    return toEvent(res, roomId);
  }

  async uploadMedia(asUser: string, data: Uint8Array, contentType: string, filename: string | null): Promise<UploadedMedia> {
    await this.ensureUser(asUser);
    const res = await this.call("POST", "/_matrix/media/v3/upload", {
      asUser,
      bytes: { data, contentType },
      query: filename ? { filename } : {},
      timeoutMs: 120_000,
    });
    return { contentUri: res.content_uri as string };
  }

  async downloadMedia(mxcUri: string): Promise<DownloadedMedia> {
    const parsed = parseMxcUri(mxcUri);
    if (!parsed) throw new MatrixError("M_NOT_FOUND", "Not a media URI", 404);
    // Authenticated media (spec v1.11): the as_token is the access token; no masquerading needed.
    const res = await this.request("GET", `/_matrix/client/v1/media/download/${enc(parsed.serverName)}/${enc(parsed.mediaId)}`, {
      timeoutMs: 120_000,
    });
    const length = res.headers.get("content-length");
    return {
      body: res.body ?? new Blob([]).stream(),
      contentType: res.headers.get("content-type") ?? "application/octet-stream",
      size: length === null ? null : Number(length),
    };
  }

  async previewUrl(url: string, ts: number): Promise<Record<string, unknown>> {
    // Authenticated media (spec v1.11), as downloads: the as_token is the access token. Not
    // retried: Synapse already tried the page, and the preview worker records a failure.
    return this.call("GET", "/_matrix/client/v1/media/preview_url", { query: { url, ts: String(Math.floor(ts)) }, retry: false, timeoutMs: 30_000 });
  }

  async roomMessages(roomId: string, opts: RoomMessagesRequest): Promise<RoomMessagesPage> {
    await this.ensureUser(this.opts.syncUserId);
    const query: Record<string, string> = { dir: opts.dir, limit: String(Math.max(1, Math.min(opts.limit, 1000))) };
    if (opts.from) query.from = opts.from;
    const res = await this.call("GET", `${CS}/rooms/${enc(roomId)}/messages`, { asUser: this.opts.syncUserId, query });
    const events = ((res.chunk ?? []) as Json[]).map((e) => toEvent(e, roomId));
    for (const event of events) {
      if (event.type === "m.room.message") event.sender_display_name = await this.displayName(roomId, event.sender);
    }
    // Synapse leaves `end` out at the edge of the timeline; an empty chunk means the same.
    const end = typeof res.end === "string" && events.length > 0 && res.end !== opts.from ? res.end : null;
    return { events, end };
  }

  async sync(since: string | null, timeoutMs: number, signal: AbortSignal): Promise<SyncBatch> {
    await this.ensureUser(this.opts.syncUserId);
    const query: Record<string, string> = { filter: this.syncFilter, timeout: String(since ? timeoutMs : 0) };
    if (since) query.since = since;
    const res = await this.call("GET", `${CS}/sync`, { asUser: this.opts.syncUserId, query, signal, timeoutMs: timeoutMs + 30_000 });
    const nextBatch = res.next_batch as string;
    // The first sync only finds out where "now" is.
    if (!since) return { nextBatch, events: [] };

    const events: MatrixEvent[] = [];
    const ephemeral: EphemeralEvent[] = [];
    for (const [roomId, invite] of Object.entries((res.rooms?.invite ?? {}) as Json)) {
      void invite;
      // Invited to a room (by an Element user, say): accept, so its events flow here too.
      await this.join(roomId, this.opts.syncUserId).catch((err) =>
        this.opts.log.warn({ room_id: roomId, err: String(err) }, "could not accept an invite for the sync user"),
      );
    }
    for (const [roomId, room] of Object.entries((res.rooms?.join ?? {}) as Json)) {
      for (const e of (room.state?.events ?? []) as Json[]) this.noteMember(roomId, e);
      let timeline = ((room.timeline?.events ?? []) as Json[]).map((e) => toEvent(e, roomId));
      if (room.timeline?.limited && room.timeline?.prev_batch) {
        const gap = await this.backfill(roomId, room.timeline.prev_batch as string, since, signal);
        const seen = new Set(timeline.map((e) => e.event_id));
        timeline = [...gap.filter((e) => !seen.has(e.event_id)), ...timeline];
      }
      for (const event of timeline) {
        if (event.type === "m.room.member" && event.state_key) this.noteMember(roomId, event);
        event.sender_display_name = await this.displayName(roomId, event.sender);
        events.push(event);
      }
      for (const e of (room.ephemeral?.events ?? []) as Json[]) {
        if (typeof e.type === "string") ephemeral.push({ room_id: roomId, type: e.type, content: (e.content ?? {}) as Record<string, unknown> });
      }
    }
    for (const [roomId, room] of Object.entries((res.rooms?.leave ?? {}) as Json)) {
      for (const e of (room.timeline?.events ?? []) as Json[]) events.push(toEvent(e, roomId));
    }
    return { nextBatch, events, ephemeral };
  }

  async close(): Promise<void> {
    this.inFlight.abort();
  }

  /** GET /_matrix/client/versions: needs no rights, answered by any live homeserver, never retried. */
  async ping(timeoutMs: number): Promise<void> {
    const timer = AbortSignal.timeout(timeoutMs);
    try {
      const res = await this.request("GET", "/_matrix/client/versions", { retry: false, signal: timer, timeoutMs: timeoutMs + 1000 });
      await res.body?.cancel();
    } catch (err) {
      throw timer.aborted ? new TimeoutError(timeoutMs) : err;
    }
  }

  /**
   * Asks the homeserver to ping our push endpoint. A successful ping also makes Synapse retry
   * its queued transactions at once, instead of waiting out a backoff of up to 512 s that it
   * built up while the service was down.
   */
  async pingAppservice(appserviceId: string): Promise<void> {
    await this.call("POST", `/_matrix/client/v1/appservice/${enc(appserviceId)}/ping`, { body: {}, retry: false });
  }

  /** Pages back from a limited timeline's prev_batch to where the last sync ended. */
  private async backfill(roomId: string, from: string, to: string, signal: AbortSignal): Promise<MatrixEvent[]> {
    const older: MatrixEvent[] = [];
    let token = from;
    for (let page = 0; page < BACKFILL_MAX_PAGES; page++) {
      const res = await this.call("GET", `${CS}/rooms/${enc(roomId)}/messages`, {
        asUser: this.opts.syncUserId,
        query: {
          dir: "b",
          from: token,
          to,
          limit: String(BACKFILL_PAGE),
          filter: JSON.stringify({ types: this.opts.eventTypes.timeline, lazy_load_members: true }),
        },
        signal,
      });
      const chunk = ((res.chunk ?? []) as Json[]).map((e) => toEvent(e, roomId));
      older.push(...chunk);
      if (chunk.length === 0 || !res.end || res.end === token) break;
      token = res.end as string;
    }
    this.opts.log.info({ room_id: roomId, backfilled: older.length }, "backfilled a limited sync timeline");
    return older.reverse();
  }

  private noteMember(roomId: string, e: Json) {
    if (e.type !== "m.room.member" || typeof e.state_key !== "string") return;
    const name = typeof e.content?.displayname === "string" ? (e.content.displayname as string) : null;
    this.displayNames.set(`${roomId}|${e.state_key}`, name);
  }

  private async displayName(roomId: string, userId: string): Promise<string | null> {
    const key = `${roomId}|${userId}`;
    if (this.displayNames.has(key)) return this.displayNames.get(key)!;
    let name: string | null = null;
    try {
      const res = await this.call("GET", `${CS}/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`, {
        asUser: this.opts.syncUserId,
        retry: false,
      });
      name = typeof res.displayname === "string" ? res.displayname : null;
    } catch {
      name = null;
    }
    this.displayNames.set(key, name);
    return name;
  }

  private async membership(roomId: string, userId: string, asUser: string): Promise<string | null> {
    try {
      const res = await this.call("GET", `${CS}/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`, { asUser, retry: false });
      return (res.membership as string) ?? null;
    } catch {
      return null;
    }
  }

  private async call(method: string, path: string, opts: CallOptions = {}): Promise<Json> {
    const res = await this.request(method, path, opts);
    return parseJson(await res.text());
  }

  /** The retrying exchange; answers the successful response with its body unread. */
  private async request(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
    const url = new URL(this.opts.baseUrl.replace(/\/$/, "") + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    if (opts.asUser) url.searchParams.set("user_id", opts.asUser);
    const deadline = Date.now() + this.opts.retryBudgetMs;
    for (let attempt = 0; ; attempt++) {
      const signals = [this.inFlight.signal, AbortSignal.timeout(opts.timeoutMs ?? 30_000)];
      if (opts.signal) signals.push(opts.signal);
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: { authorization: `Bearer ${this.opts.asToken}`, "content-type": opts.bytes?.contentType ?? "application/json" },
          body: opts.bytes ? opts.bytes.data : opts.body === undefined ? undefined : JSON.stringify(opts.body),
          signal: AbortSignal.any(signals),
        });
      } catch (err) {
        if (opts.signal?.aborted || this.inFlight.signal.aborted) throw new MatrixError("M_ABORTED", "request aborted", 503);
        const wait = backoffDelay(attempt, RETRY_BACKOFF);
        if (opts.retry === false || Date.now() + wait > deadline) {
          throw new MatrixError("M_UNREACHABLE", `homeserver unreachable: ${(err as Error).message}`, 502);
        }
        await abortableSleep(wait, opts.signal);
        continue;
      }
      if (res.ok) return res;
      const body = parseJson(await res.text());
      const errcode = typeof body.errcode === "string" ? body.errcode : `HTTP_${res.status}`;
      const message = typeof body.error === "string" ? body.error : `homeserver answered ${res.status}`;
      const retryable = res.status === 429 || res.status >= 500;
      if (retryable && opts.retry !== false) {
        const wait =
          res.status === 429
            ? backoffAtLeast(retryAfterMs(body, res.headers), attempt, RETRY_BACKOFF)
            : backoffDelay(attempt, RETRY_BACKOFF);
        if (Date.now() + wait <= deadline) {
          this.opts.log.debug({ status: res.status, errcode, wait_ms: wait, path: redactPath(path) }, "retrying homeserver call");
          await abortableSleep(wait, opts.signal);
          continue;
        }
      }
      throw new MatrixError(errcode, message, res.status);
    }
  }
}

const enc = encodeURIComponent;

/** 5xx and network errors: 100–200 ms at first, doubling to 2–4 s, jittered so channels do not retry in step. */
const RETRY_BACKOFF: BackoffPolicy = { baseMs: 200, capMs: 4000 };
