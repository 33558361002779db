import { lookup } from "node:dns/promises";
import { checkServerIdentity } from "node:tls";
import { fetchTarget, ipLiteral, type AddressGuard } from "../../domain/fetch-guard.ts";

/**
 * One GET for the built-in link preview fetcher, safe to point at any link a message holds
 * (README "Link previews"): the host is resolved here and every address it resolves to must
 * pass the guard, then the request goes to one of those checked addresses (the Host header and,
 * for https, the TLS server name and certificate check keep the host's name), so a name that
 * resolves differently the second time cannot slip through. Redirects are followed by hand, each
 * target checked the same way; the body is read up to a byte limit; one deadline bounds it all.
 */
export interface GuardedFetchOptions {
  guard: AddressGuard;
  /** Bytes read at most; a longer body is cut there (`truncated`), or refused when `whole` is asked for. */
  maxBytes: number;
  /** The content types (the essence, lower case) the caller wants; anything else is refused unread. */
  accept: (contentType: string) => boolean;
  /** A cut body is no use (an image): refuse it instead. */
  whole?: boolean;
  signal: AbortSignal;
  /** How a name becomes addresses; the system resolver by default. */
  resolve?: (hostname: string) => Promise<string[]>;
}

export interface Fetched {
  /** Where the content came from, after redirects. */
  url: URL;
  /** `text/html`, `image/png`, …: the essence, lower case. */
  contentType: string;
  charset: string | null;
  body: Uint8Array;
  truncated: boolean;
}

/** Why nothing was fetched; the message says it without the URL (logs never carry a link's query). */
export class FetchRefused extends Error {
  override readonly name = "FetchRefused";
}

export const MAX_REDIRECTS = 3;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
export const USER_AGENT = "daarion-messaging (bot; link preview)";

const systemResolve = async (hostname: string) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

export async function guardedFetch(link: string, opts: GuardedFetchOptions): Promise<Fetched> {
  let current = link;
  for (let hop = 0; ; hop++) {
    const target = fetchTarget(current);
    if ("refused" in target) throw new FetchRefused(target.refused);
    const address = await checkedAddress(target.hostname, opts);
    const res = await request(target.url, target.hostname, address, opts.signal);
    if (REDIRECTS.has(res.status)) {
      const location = res.headers.get("location");
      await res.body?.cancel().catch(() => {});
      if (!location) throw new FetchRefused(`a ${res.status} without a Location`);
      if (hop >= MAX_REDIRECTS) throw new FetchRefused(`more than ${MAX_REDIRECTS} redirects`);
      current = new URL(location, target.url).href;
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new FetchRefused(`the page answered ${res.status}`);
    }
    const [essence, ...params] = (res.headers.get("content-type") ?? "").split(";");
    const contentType = essence!.trim().toLowerCase();
    if (!opts.accept(contentType)) {
      await res.body?.cancel().catch(() => {});
      throw new FetchRefused(`content type ${contentType || "(none)"} is not previewed`);
    }
    const declared = Number(res.headers.get("content-length"));
    if (opts.whole && Number.isFinite(declared) && declared > opts.maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw new FetchRefused(`larger than ${opts.maxBytes} bytes`);
    }
    const { body, truncated } = await readAtMost(res, opts.maxBytes, opts.signal);
    if (truncated && opts.whole) throw new FetchRefused(`larger than ${opts.maxBytes} bytes`);
    const charset = params.map((p) => /^\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(p)?.[1]).find(Boolean) ?? null;
    return { url: target.url, contentType, charset, body, truncated };
  }
}

/** The address to connect to: the literal itself, or the first of the name's addresses; every one must pass. */
async function checkedAddress(hostname: string, opts: GuardedFetchOptions): Promise<string> {
  const literal = ipLiteral(hostname);
  let addresses: string[];
  if (literal) addresses = [literal.address];
  else {
    try {
      addresses = await abortable((opts.resolve ?? systemResolve)(hostname), opts.signal);
    } catch (err) {
      if (opts.signal.aborted) throw err;
      throw new FetchRefused("the host name does not resolve");
    }
  }
  if (addresses.length === 0) throw new FetchRefused("the host name does not resolve");
  // All of them: a name with one public and one private address is refused, whichever would be used.
  if (!addresses.every((a) => opts.guard.mayConnect(a))) throw new FetchRefused("the host resolves to an address that is not allowed");
  return addresses[0]!;
}

/** GET to the checked address, naming the host in Host and, for https, in SNI and the certificate check. */
function request(url: URL, hostname: string, address: string, signal: AbortSignal): Promise<Response> {
  const direct = new URL(url.href);
  direct.hostname = address.includes(":") ? `[${address}]` : address;
  const tls =
    url.protocol === "https:"
      ? {
          ...(ipLiteral(hostname) ? {} : { serverName: hostname }),
          checkServerIdentity: (_: string, cert: Parameters<typeof checkServerIdentity>[1]) => checkServerIdentity(hostname, cert),
        }
      : undefined;
  return fetch(direct, {
    method: "GET",
    redirect: "manual",
    // A proxy from the environment would resolve the name itself, past the guard.
    proxy: false,
    signal,
    headers: {
      host: url.host,
      "user-agent": USER_AGENT,
      accept: "text/html,application/xhtml+xml;q=0.9,image/*;q=0.8",
      "accept-language": "en;q=0.9, *;q=0.5",
    },
    ...(tls ? { tls } : {}),
  });
}

/** The body, stopping after maxBytes (the rest is never read). */
async function readAtMost(res: Response, maxBytes: number, signal: AbortSignal): Promise<{ body: Uint8Array; truncated: boolean }> {
  const reader = res.body?.getReader();
  if (!reader) return { body: new Uint8Array(0), truncated: false };
  const chunks: Uint8Array[] = [];
  let total = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await abortable(reader.read(), signal);
      if (done) break;
      const room = maxBytes - total;
      if (value.byteLength > room) {
        chunks.push(value.subarray(0, room));
        total += room;
        truncated = true;
        break;
      }
      chunks.push(value);
      total += value.byteLength;
    }
  } finally {
    if (truncated || signal.aborted) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  const body = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return { body, truncated };
}

/** Rejects with the signal's reason once it aborts, whatever the promise does. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
