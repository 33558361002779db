import type { KV, NatsConnection } from "nats";

/** Who holds a lease: the process (instance id plus a per-start nonce) and its instance id. */
export interface LeaseHolder {
  incarnation: string;
  instance: string;
}

export interface HeldLease {
  holder: LeaseHolder;
  revision: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JetStream's "wrong last sequence": the key changed since the revision named (err_code 10071). */
function isConflict(err: unknown): boolean {
  const text = String((err as Error)?.message ?? err);
  return /wrong last sequence|10071|key exists/i.test(text);
}

/**
 * Leases in one NATS KV bucket whose entries expire after the bucket's TTL: acquire with
 * create (only if absent), renew with update at the revision held, release with a delete at
 * that revision. A lost race is null, never an exception; NATS being away is an exception.
 * On NATS 2.9 an entry expires silently (no delete marker), so holders are read, not watched only.
 */
export class LeaseBucket {
  private constructor(
    private readonly kv: KV,
    readonly ttlMs: number,
  ) {}

  static async open(nc: NatsConnection, bucket: string, ttlMs: number): Promise<LeaseBucket> {
    const kv = await nc.jetstream().views.kv(bucket, { ttl: ttlMs, history: 1 });
    return new LeaseBucket(kv, ttlMs);
  }

  async acquire(key: string, holder: LeaseHolder): Promise<number | null> {
    try {
      return await this.kv.create(key, encoder.encode(JSON.stringify(holder)));
    } catch (err) {
      if (isConflict(err)) return null;
      throw err;
    }
  }

  async renew(key: string, holder: LeaseHolder, revision: number): Promise<number | null> {
    try {
      return await this.kv.update(key, encoder.encode(JSON.stringify(holder)), revision);
    } catch (err) {
      if (isConflict(err)) return null;
      throw err;
    }
  }

  /** Gives the lease up at that revision; false if the key changed since (someone else's now, or renewed meanwhile). */
  async release(key: string, revision: number): Promise<boolean> {
    try {
      await this.kv.delete(key, { previousSeq: revision });
      return true;
    } catch (err) {
      if (!isConflict(err)) throw err;
      return false;
    }
  }

  /** Keeps a key alive (an instance's presence); no revision check. */
  async put(key: string, holder: LeaseHolder): Promise<void> {
    await this.kv.put(key, encoder.encode(JSON.stringify(holder)));
  }

  async remove(key: string): Promise<void> {
    await this.kv.delete(key);
  }

  async read(key: string): Promise<HeldLease | null> {
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return null;
    return { holder: JSON.parse(decoder.decode(entry.value)) as LeaseHolder, revision: entry.revision };
  }

  /** The keys that match (e.g. "member.>"), deleted ones left out. */
  async keys(filter: string): Promise<string[]> {
    const found: string[] = [];
    for await (const key of await this.kv.keys(filter)) found.push(key);
    return found;
  }

  /** Calls back on every delete of a key matching filter (a holder letting go) until stopped. */
  async watchReleases(filter: string, onRelease: (key: string) => void): Promise<() => void> {
    const iterator = await this.kv.watch({ key: filter, ignoreDeletes: false });
    void (async () => {
      for await (const entry of iterator) if (entry.operation !== "PUT") onRelease(entry.key);
    })().catch(() => {});
    return () => iterator.stop();
  }
}
