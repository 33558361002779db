import { BlockList, isIP } from "node:net";
import { ConfigError } from "../config.ts";

/**
 * TRUSTED_PROXIES: addresses or CIDR ranges (comma- or space-separated) of the reverse proxies
 * in front of the service. Only a request whose socket peer is one of them may say, in
 * X-Forwarded-For, who the client is. Unset: nobody, the peer is the client.
 */
export function parseTrustedProxies(value: string | undefined): BlockList | null {
  if (!value) return null;
  const list = new BlockList();
  for (const entry of value.split(/[\s,]+/).filter(Boolean)) {
    const [address = "", prefix, extra] = entry.split("/");
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const bits = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
    if (family === 0 || extra !== undefined || !(bits >= 0 && bits <= max)) {
      throw new ConfigError(`invalid environment variable TRUSTED_PROXIES=${JSON.stringify(value)}: "${entry}" is not an IP address or CIDR range`);
    }
    list.addSubnet(normalize(address), bits, family === 4 ? "ipv4" : "ipv6");
  }
  return list;
}

/**
 * The client's address: the socket peer, unless the peer is a trusted proxy; then the
 * X-Forwarded-For hops are read from the right (each appended by the proxy that received it)
 * and the first address no trusted proxy stands for is the client. Hops to its left are
 * whatever the client claimed, so they never count.
 */
export function clientAddress(peer: string | null, forwardedFor: string | null, trusted: BlockList | null): string | null {
  if (!peer) return null;
  let client = normalize(peer);
  if (!trusted || !forwardedFor) return client;
  const hops = forwardedFor.split(",").map((hop) => withoutPort(hop.trim()));
  while (isTrusted(trusted, client) && hops.length > 0) {
    const next = hops.pop()!;
    // Garbage in the header: the last trusted proxy's own view stands.
    if (isIP(next) === 0) break;
    client = next;
  }
  return client;
}

function isTrusted(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** IPv4 seen through an IPv6 socket (`::ffff:10.0.0.1`) is the IPv4 address. */
function normalize(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address.toLowerCase();
}

/** Some proxies write `1.2.3.4:5678` or `[2001:db8::1]:5678`. */
function withoutPort(hop: string): string {
  const match = /^\[([^\]]+)\](?::\d+)?$/.exec(hop) ?? /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(hop);
  return normalize(match ? match[1]! : hop);
}
