import type { Logger } from "../../log.ts";
import type { Sql } from "../../store/db.ts";
import type { MatrixBackend } from "../../matrix/port.ts";
import { MatrixError } from "../../matrix/port.ts";
import { AppError } from "../../errors.ts";
import type { EventBus } from "../../events/bus.ts";
import { Subjects } from "../../events/model.ts";
import type { ChannelRegistry } from "../../channel/registry.ts";
import { fromOpenGraph } from "../../domain/link-previews.ts";
import { PREVIEW_LENGTH } from "../../domain/preview.ts";
import type { LinkPreview } from "../../wire/link-preview.ts";
import { cachePreview, cachedPreview, claimPreviewJobs, dropPreviewJob, pruneCache, type PreviewJob } from "../../store/link-previews.ts";

export interface PreviewWorkerOptions {
  sql: Sql;
  matrix: MatrixBackend;
  registry: ChannelRegistry;
  events: EventBus;
  log: Logger;
  /** This process (its incarnation): who holds the jobs it claims. */
  owner: string;
  /** LINK_PREVIEW_CONCURRENCY: previews fetched at once. */
  concurrency: number;
  /** LINK_PREVIEW_CACHE_TTL_S: how long a link's preview is reused; a failure is kept for at most FAILURE_TTL_S. */
  cacheTtlS: number;
  /** How often it looks for jobs unwoken (a claim a crash left, a message sent on another instance). */
  sweepMs?: number;
}

/** A link that could not be previewed is not asked again for this long (no retry storm), whatever the cache keeps. */
export const FAILURE_TTL_S = 600;
const SWEEP_MS = 15_000;
/** How long stop() waits for fetches in flight; what is left stays claimed and is taken again later. */
const STOP_WAIT_MS = 2000;

type Outcome = { preview: LinkPreview | null; failed: boolean };

/**
 * Fetches the link previews messages want (README "Link previews"), off the send path: sends and
 * Matrix messages only write a job (store/link-previews.ts) with their row. The worker is woken
 * by the messages it may have work for (message.created, an edit's message.updated, on the
 * in-process bus) and sweeps now and then; it claims jobs of sent messages, at most
 * `concurrency` at a time, asks the homeserver's preview_url (Synapse's, or the local backend's
 * own fetcher) once per link (an in-process single flight, then the cache table), and hands the
 * preview to the channel's loop (previews.attach), which writes and announces it. A failure is
 * cached too, so a bad link is not fetched again and again; it never touches the message.
 * Created and stopped by the composition root; nothing runs at import time.
 */
export class PreviewWorker {
  private stopped = false;
  private round: Promise<void> | null = null;
  private again = false;
  private readonly inFlight = new Map<string, Promise<Outcome>>();
  private unsubscribe: (() => void) | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: PreviewWorkerOptions) {
    this.log = opts.log.child({ component: "link-previews" });
  }

  start(): void {
    this.unsubscribe = this.opts.events.subscribe(({ subject, payload }) => {
      if (subject === Subjects.messageCreated && mayHaveLink(payload)) this.wake();
      else if (subject === Subjects.messageUpdated && (payload as { change?: string }).change === "edit" && mayHaveLink(payload)) this.wake();
    });
    this.timer = setInterval(() => {
      this.wake();
      void pruneCache(this.opts.sql).catch(() => {});
    }, this.opts.sweepMs ?? SWEEP_MS);
    this.timer.unref?.();
    this.wake();
  }

  /** Looks for work now (or right after the round that runs). */
  wake(): void {
    if (this.stopped) return;
    if (this.round) {
      this.again = true;
      return;
    }
    this.round = this.rounds().finally(() => (this.round = null));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    const round = this.round;
    if (!round) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([round, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private async rounds(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.drain();
      } catch (err) {
        this.log.warn({ err: describe(err) }, "link preview jobs could not be read; the next sweep tries again");
      }
    } while (this.again && !this.stopped);
  }

  /** Keeps up to `concurrency` jobs running until none is left to claim. */
  private async drain(): Promise<void> {
    const active = new Set<Promise<void>>();
    try {
      while (!this.stopped) {
        const free = this.opts.concurrency - active.size;
        const jobs = free > 0 ? await claimPreviewJobs(this.opts.sql, this.opts.owner, free) : [];
        for (const job of jobs) {
          const running: Promise<void> = this.run(job).finally(() => active.delete(running));
          active.add(running);
        }
        if (active.size === 0) return;
        if (jobs.length < free || free === 0) await Promise.race(active);
      }
    } finally {
      await Promise.all(active);
    }
  }

  private async run(job: PreviewJob): Promise<void> {
    const where = { channel_id: job.channel_id, message_id: job.message_id };
    try {
      const { preview } = await this.previewOf(job);
      if (this.stopped) return;
      if (!preview) {
        await dropPreviewJob(this.opts.sql, job.message_id, job.url);
        return;
      }
      await this.opts.registry.run(job.channel_id, "previews.attach", { messageId: job.message_id, url: job.url, preview: { ...preview, url: job.url } });
    } catch (err) {
      // Refused for good (the channel archived or gone): the message goes without.
      if (err instanceof AppError && err.status < 500) {
        this.log.info({ ...where, error: err.code }, "a link preview was not written: the channel refused it");
        await dropPreviewJob(this.opts.sql, job.message_id, job.url).catch(() => {});
        return;
      }
      // The job stays claimed: it is taken again when its claim runs out (at most MAX_ATTEMPTS times).
      this.log.warn({ ...where, err: describe(err) }, "a link preview could not be written; it will be tried again");
    }
  }

  /** The link's preview: cached, being fetched by another job, or fetched now (and cached, failures too). */
  private async previewOf(job: PreviewJob): Promise<Outcome> {
    const key = cacheKey(job.url);
    const cached = await cachedPreview(this.opts.sql, key);
    if (cached) return cached;
    let fetching = this.inFlight.get(key);
    if (!fetching) {
      fetching = this.fetch(job, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, fetching);
    }
    return fetching;
  }

  private async fetch(job: PreviewJob, key: string): Promise<Outcome> {
    let outcome: Outcome;
    try {
      const og = await this.opts.matrix.previewUrl(key, job.message_created_at.getTime());
      outcome = { preview: fromOpenGraph(job.url, og), failed: false };
    } catch (err) {
      // The host only: a link's path and query may carry what its sender would not have logged.
      this.log.info({ channel_id: job.channel_id, message_id: job.message_id, host: hostOf(key), ...failure(err) }, "no link preview: the page could not be had");
      outcome = { preview: null, failed: true };
    }
    const ttl = outcome.failed ? Math.min(FAILURE_TTL_S, this.opts.cacheTtlS) : this.opts.cacheTtlS;
    await cachePreview(this.opts.sql, key, outcome, ttl);
    return outcome;
  }
}

/**
 * Whether a new or edited message may have written a job: its preview names a link, or is cut
 * (a link further on). Messages without one wake nothing, so they cost the worker no query;
 * the sweep finds anything this misses.
 */
function mayHaveLink(payload: unknown): boolean {
  const preview = (payload as { preview?: unknown }).preview;
  return typeof preview !== "string" || preview.length >= PREVIEW_LENGTH || /https?:\/\//i.test(preview);
}

/** The link as fetched and cached: without its fragment, which never reaches the server. */
export function cacheKey(link: string): string {
  try {
    const url = new URL(link);
    url.hash = "";
    return url.href;
  } catch {
    return link;
  }
}

const hostOf = (link: string) => {
  try {
    return new URL(link).hostname;
  } catch {
    return null;
  }
};

function failure(err: unknown): Record<string, unknown> {
  // A homeserver's reason may quote the link: any URL in it is left out.
  if (err instanceof MatrixError) return { errcode: err.errcode, status: err.httpStatus, reason: err.message.replace(/\b[a-z][a-z0-9+.-]*:\/\/\S*/gi, "<url>").slice(0, 200) };
  return { err: err instanceof Error ? err.name : "error" };
}

const describe = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));
