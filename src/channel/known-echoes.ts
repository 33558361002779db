/** How many such events are remembered; an echo that finds its id forgotten is matched in the index instead. */
const KNOWN_ECHOES_MAX = 10_000;

/**
 * Events this process wrote into the index and the homeserver in one statement
 * (sends-in-index.ts): their echo from /sync carries nothing new, so the sync poller drops it
 * before the inbox (no inbox row to write and delete, no turn of the channel's actor). One
 * process's memory: a single instance only, where the poller and the actors live together. An
 * echo whose id is not here (forgotten, or after a restart) takes the inbox as before, and the
 * actor matches it by its event id in the index.
 */
export class KnownEchoes {
  private readonly ids = new Set<string>();

  add(eventId: string): void {
    this.ids.add(eventId);
    if (this.ids.size > KNOWN_ECHOES_MAX) this.ids.delete(this.ids.values().next().value!);
  }

  /** True (and forgotten) when the event is one of those. */
  take(eventId: string): boolean {
    return this.ids.delete(eventId);
  }
}
