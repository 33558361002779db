import { describe, expect, test } from "bun:test";
import { clientAddress, parseTrustedProxies } from "../../src/http/client-address.ts";
import { ConfigError } from "../../src/config.ts";

describe("the client's address", () => {
  const proxies = parseTrustedProxies("10.0.0.0/8, 2001:db8::1");

  test("without trusted proxies the peer is the client, whatever X-Forwarded-For claims", () => {
    expect(clientAddress("203.0.113.7", "198.51.100.1", null)).toBe("203.0.113.7");
    expect(clientAddress("::ffff:203.0.113.7", null, null)).toBe("203.0.113.7");
    expect(clientAddress(null, "198.51.100.1", proxies)).toBeNull();
  });

  test("behind trusted proxies the first hop from the right that no proxy stands for is the client", () => {
    expect(clientAddress("10.0.0.2", "198.51.100.9, 203.0.113.7, 10.0.0.3", proxies)).toBe("203.0.113.7");
    expect(clientAddress("2001:db8::1", "[2001:db8::5]:4431", proxies)).toBe("2001:db8::5");
    expect(clientAddress("10.0.0.2", "203.0.113.7:5678", proxies)).toBe("203.0.113.7");
  });

  test("an untrusted peer's header is ignored; garbage leaves the last trusted proxy's view", () => {
    expect(clientAddress("203.0.113.7", "198.51.100.1", proxies)).toBe("203.0.113.7");
    expect(clientAddress("10.0.0.2", "not-an-ip", proxies)).toBe("10.0.0.2");
  });

  test("TRUSTED_PROXIES that is not addresses or CIDR ranges is a configuration error", () => {
    expect(parseTrustedProxies(undefined)).toBeNull();
    for (const bad of ["10.0.0.0/33", "proxy.local", "10.0.0.1/8/8"]) expect(() => parseTrustedProxies(bad)).toThrow(ConfigError);
  });
});
