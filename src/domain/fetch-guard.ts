import { BlockList, isIP } from "node:net";

/**
 * Where the built-in link preview fetcher may connect (README "Link previews"): never to a
 * private, loopback, link-local, shared (CGNAT), multicast, documentation or otherwise special
 * address, unless LINK_PREVIEW_ALLOWED_ADDRESSES names it. Pure rules: resolving names and
 * connecting is the fetcher's (src/matrix/local/guarded-fetch.ts), which asks about every
 * address a name resolves to and connects to one it asked about.
 */

type Range = readonly [address: string, prefix: number];

/** IPv4 ranges no preview fetch reaches (IANA special-purpose registry, as Synapse's url_preview_ip_range_blacklist). */
export const BLOCKED_IPV4: readonly Range[] = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // shared address space (CGNAT)
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata services live here)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay anycast
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and the broadcast address
];

/** IPv6 ranges no preview fetch reaches; IPv4 in IPv6 (mapped, compatible, NAT64, 6to4) is refused whatever it embeds. */
export const BLOCKED_IPV6: readonly Range[] = [
  ["::", 96], // unspecified, loopback (::1) and the deprecated IPv4-compatible addresses
  ["::ffff:0:0", 96], // IPv4-mapped
  ["64:ff9b::", 96], // NAT64: would reach any IPv4 address through a translator
  ["64:ff9b:1::", 48], // local-use NAT64
  ["100::", 64], // discard-only
  ["2001::", 23], // IETF protocol assignments (Teredo, ORCHID, …)
  ["2001:db8::", 32], // documentation
  ["2002::", 16], // 6to4: embeds an IPv4 address
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated)
  ["ff00::", 8], // multicast
];

/**
 * Ports browsers refuse to fetch (the Fetch Standard's "bad ports": SMTP, SSH, IRC, …), so a
 * link cannot make the service talk HTTP to a mail or chat server. Any other port is allowed:
 * the address rules are what keep the fetcher out of private networks.
 */
export const BAD_PORTS: ReadonlySet<number> = new Set([
  0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113,
  115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563,
  587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669,
  6679, 6697, 10080,
]);

/** The longest URL the service previews (longer ones are not links people paste). */
export const MAX_PREVIEW_URL_LENGTH = 2048;

function blockList(ranges: readonly Range[], family: "ipv4" | "ipv6"): BlockList {
  const list = new BlockList();
  for (const [address, prefix] of ranges) list.addSubnet(address, prefix, family);
  return list;
}

// IPv4 and IPv6 rules live apart: a BlockList with ::ffff:0:0/96 would also match every IPv4 address.
const blocked4 = blockList(BLOCKED_IPV4, "ipv4");
const blocked6 = blockList(BLOCKED_IPV6, "ipv6");

/** An IP literal without the brackets a URL puts around IPv6; null when it is none. */
export function ipLiteral(host: string): { address: string; family: "ipv4" | "ipv6" } | null {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const version = isIP(bare);
  return version === 4 ? { address: bare, family: "ipv4" } : version === 6 ? { address: bare, family: "ipv6" } : null;
}

/** True for an address in a blocked range (an unparsable one counts as blocked). */
export function isBlockedAddress(address: string): boolean {
  const ip = ipLiteral(address);
  if (!ip) return true;
  return ip.family === "ipv4" ? blocked4.check(ip.address, "ipv4") : blocked6.check(ip.address, "ipv6");
}

/**
 * LINK_PREVIEW_ALLOWED_ADDRESSES: addresses or CIDR ranges (comma or space separated) the fetcher
 * may reach although they are blocked, e.g. `127.0.0.1` for a test page server or `10.1.2.0/24`
 * for an intranet. Throws on an entry that is neither.
 */
export class AddressGuard {
  private readonly allowed = new BlockList();
  private readonly anyAllowed: boolean;

  constructor(allowList: readonly string[] = []) {
    for (const entry of allowList) {
      const [address, prefix] = entry.split("/");
      const ip = ipLiteral(address ?? "");
      if (!ip) throw new Error(`not an IP address or CIDR range: ${entry}`);
      const max = ip.family === "ipv4" ? 32 : 128;
      const bits = prefix === undefined ? max : Number(prefix);
      if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new Error(`bad prefix length in ${entry}`);
      this.allowed.addSubnet(ip.address, bits, ip.family);
    }
    this.anyAllowed = allowList.length > 0;
  }

  static parse(value: string | undefined): AddressGuard {
    return new AddressGuard((value ?? "").split(/[\s,]+/).filter(Boolean));
  }

  /** May the fetcher connect to this address? */
  mayConnect(address: string): boolean {
    const ip = ipLiteral(address);
    if (!ip) return false;
    if (this.anyAllowed && this.allowed.check(ip.address, ip.family)) return true;
    return !isBlockedAddress(ip.address);
  }
}

export type FetchTarget = { url: URL; hostname: string; port: number };

/**
 * What the fetcher may ask for: http or https, no user name or password, not a bad port, a
 * host. The answer's hostname is bare (IPv6 without brackets), ready for a DNS look-up.
 */
export function fetchTarget(raw: string): FetchTarget | { refused: string } {
  if (raw.length > MAX_PREVIEW_URL_LENGTH) return { refused: "the URL is too long" };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { refused: "not a URL" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return { refused: "only http and https URLs are previewed" };
  if (url.username || url.password) return { refused: "URLs with credentials are not previewed" };
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  if (!hostname) return { refused: "the URL has no host" };
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  if (BAD_PORTS.has(port)) return { refused: `port ${port} is not previewed` };
  url.hash = "";
  return { url, hostname, port };
}
