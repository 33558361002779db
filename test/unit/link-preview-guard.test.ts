import { describe, expect, test } from "bun:test";
import { AddressGuard, fetchTarget, isBlockedAddress } from "../../src/domain/fetch-guard.ts";
import { fromOpenGraph, linksIn, wantedPreview } from "../../src/domain/link-previews.ts";
import { openGraphOf } from "../../src/matrix/local/open-graph.ts";

describe("the address guard", () => {
  test("private, loopback, link-local, CGNAT, this-network, multicast, reserved and documentation IPv4 addresses are blocked", () => {
    const blocked = [
      "0.0.0.0",
      "0.1.2.3",
      "10.0.0.1",
      "10.255.255.255",
      "100.64.0.1",
      "100.127.255.254",
      "127.0.0.1",
      "127.1.2.3",
      "169.254.169.254",
      "172.16.0.1",
      "172.31.255.255",
      "192.0.0.8",
      "192.0.2.1",
      "192.168.1.1",
      "198.18.0.1",
      "198.51.100.7",
      "203.0.113.9",
      "224.0.0.1",
      "239.255.255.250",
      "240.0.0.1",
      "255.255.255.255",
    ];
    for (const address of blocked) expect([address, isBlockedAddress(address)]).toEqual([address, true]);
    for (const address of ["8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.15.255.255", "172.32.0.1", "93.184.216.34", "11.0.0.1"]) {
      expect([address, isBlockedAddress(address)]).toEqual([address, false]);
    }
  });

  test("IPv6: loopback, unspecified, unique local, link-local, multicast, documentation, and IPv4 inside IPv6 (mapped, compatible, NAT64, 6to4) are blocked", () => {
    const blocked = [
      "::1",
      "::",
      "0:0:0:0:0:0:0:1",
      "fc00::1",
      "fd12:3456::1",
      "fe80::1",
      "febf::1",
      "fec0::1",
      "ff02::1",
      "2001:db8::1",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "::ffff:8.8.8.8",
      "::127.0.0.1",
      "64:ff9b::a00:1",
      "64:ff9b:1::1",
      "2002:a00:1::1",
      "2001::1",
      "100::1",
    ];
    for (const address of blocked) expect([address, isBlockedAddress(address)]).toEqual([address, true]);
    for (const address of ["2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::1"]) expect([address, isBlockedAddress(address)]).toEqual([address, false]);
  });

  test("anything that is not an address counts as blocked", () => {
    for (const junk of ["", "localhost", "example.org", "1.2.3", "999.1.1.1", "::g"]) expect(isBlockedAddress(junk)).toBe(true);
  });

  test("the allow-list opens exactly what it names (addresses and CIDR ranges, IPv4 also in its mapped form); anything else stays blocked", () => {
    const guard = AddressGuard.parse("127.0.0.1, 10.1.2.0/24 fd00::/8");
    expect(guard.mayConnect("127.0.0.1")).toBe(true);
    expect(guard.mayConnect("::ffff:127.0.0.1")).toBe(true);
    expect(guard.mayConnect("127.0.0.2")).toBe(false);
    expect(guard.mayConnect("10.1.2.200")).toBe(true);
    expect(guard.mayConnect("10.1.3.1")).toBe(false);
    expect(guard.mayConnect("fd00::5")).toBe(true);
    expect(guard.mayConnect("fe80::1")).toBe(false);
    expect(guard.mayConnect("8.8.8.8")).toBe(true);
    expect(guard.mayConnect("not an address")).toBe(false);
    const none = AddressGuard.parse(undefined);
    expect(none.mayConnect("127.0.0.1")).toBe(false);
    expect(none.mayConnect("1.1.1.1")).toBe(true);
    expect(() => AddressGuard.parse("127.0.0.1/33")).toThrow();
    expect(() => AddressGuard.parse("localhost")).toThrow();
  });

  test("only http and https, without credentials, on a port browsers would fetch; the fragment is dropped", () => {
    expect(fetchTarget("https://example.org/a?b=1#frag")).toMatchObject({ hostname: "example.org", port: 443 });
    expect((fetchTarget("https://example.org/a?b=1#frag") as { url: URL }).url.href).toBe("https://example.org/a?b=1");
    expect(fetchTarget("http://[::1]:8080/")).toMatchObject({ hostname: "::1", port: 8080 });
    // The URL parser turns odd IPv4 spellings into the plain one, which the guard then sees.
    expect(fetchTarget("http://0x7f.1/")).toMatchObject({ hostname: "127.0.0.1", port: 80 });
    expect(fetchTarget("http://2130706433/")).toMatchObject({ hostname: "127.0.0.1" });
    for (const [url, reason] of [
      ["ftp://example.org/", "only http and https URLs are previewed"],
      ["file:///etc/passwd", "only http and https URLs are previewed"],
      ["javascript:alert(1)", "only http and https URLs are previewed"],
      ["http://user:pass@example.org/", "URLs with credentials are not previewed"],
      ["http://example.org:25/", "port 25 is not previewed"],
      ["https://example.org:6667/", "port 6667 is not previewed"],
      ["not a url", "not a URL"],
      [`https://example.org/${"a".repeat(3000)}`, "the URL is too long"],
    ]) {
      expect(fetchTarget(url!)).toEqual({ refused: reason! });
    }
    expect(fetchTarget("http://example.org:8080/")).toMatchObject({ port: 8080 });
  });
});

describe("which link a message previews", () => {
  test("links as a reader sees them: sentence punctuation and unbalanced brackets are not part of them; matrix.to is no page", () => {
    expect(linksIn("see https://example.org/a. And (http://x.org/b) or https://en.wikipedia.org/wiki/Foo_(bar), ok?")).toEqual([
      "https://example.org/a",
      "http://x.org/b",
      "https://en.wikipedia.org/wiki/Foo_(bar)",
    ]);
    expect(linksIn("ping https://matrix.to/#/@bob:example.org and <https://example.org/q?a=1&b=2>")).toEqual(["https://example.org/q?a=1&b=2"]);
    expect(linksIn("no links here, just example.org and ftp://example.org")).toEqual([]);
  });

  test("the first link of a text message; none for files, confidential channels, an opt-out, or an empty MSC4095 list", () => {
    const body = "a https://one.example/ b https://two.example/";
    expect(wantedPreview({ body, msgtype: "m.text", encrypted: false })).toEqual({ kind: "fetch", url: "https://one.example/" });
    expect(wantedPreview({ body, msgtype: "m.notice", encrypted: false })).toEqual({ kind: "fetch", url: "https://one.example/" });
    expect(wantedPreview({ body, msgtype: "m.image", encrypted: false })).toEqual({ kind: "none" });
    expect(wantedPreview({ body, msgtype: "m.text", encrypted: true })).toEqual({ kind: "none" });
    expect(wantedPreview({ body, msgtype: "m.text", encrypted: false, optOut: true })).toEqual({ kind: "none" });
    expect(wantedPreview({ body, msgtype: "m.text", encrypted: false, content: { "com.beeper.linkpreviews": [] } })).toEqual({ kind: "none" });
    expect(wantedPreview({ body, msgtype: "m.text", encrypted: false, content: { "m.url_previews": [] } })).toEqual({ kind: "none" });
  });

  test("MSC4095: the first usable entry decides; bundled Open Graph data is used, a bare URL is fetched; stable name before the unstable prefix", () => {
    const body = "https://one.example/ https://two.example/";
    expect(wantedPreview({ body, msgtype: "m.text", encrypted: false, content: { "m.url_previews": [{ "matrix:matched_url": "https://two.example/" }] } })).toEqual({
      kind: "fetch",
      url: "https://two.example/",
    });
    const bundled = wantedPreview({
      body,
      msgtype: "m.text",
      encrypted: false,
      content: {
        "m.url_previews": [{ "og:url": "javascript:x" }, { "og:url": "https://two.example/", "og:title": " Two\n", "og:image": "mxc://example.org/abc", "og:image:width": 10 }],
        "com.beeper.linkpreviews": [],
      },
    });
    expect(bundled).toEqual({
      kind: "bundled",
      url: "https://two.example/",
      preview: { url: "https://two.example/", title: "Two", description: null, site_name: null, image_url: "mxc://example.org/abc", image_width: 10, image_height: null },
    });
    // An encrypted thumbnail (matrix:image:encryption) or an http og:image is no image the service can serve.
    expect(fromOpenGraph("https://x.example/", { "og:title": "T", "og:image": "https://x.example/i.png" })).toMatchObject({ image_url: null, image_width: null });
    expect(fromOpenGraph("https://x.example/", { "og:image:width": 4 })).toBeNull();
    expect(fromOpenGraph("https://x.example/", { "og:title": "x".repeat(400) })!.title).toHaveLength(300);
  });
});

describe("the Open Graph reader (htmlparser2)", () => {
  const page = new URL("https://news.example/articles/1");
  const read = (html: string, charset: string | null = "utf-8") => openGraphOf(new TextEncoder().encode(html), charset, page);

  test("og: tags first, Twitter cards and the plain title and description as fallbacks, entities decoded, the image made absolute", () => {
    expect(
      read(`<html><head><title>Plain</title><meta name="description" content="Plain &amp; simple"><meta name="twitter:title" content="Card">
        <meta property="og:title" content="Open &quot;Graph&quot;"><meta property="og:title" content="Second"><meta property="og:image" content="../img/a.png?x=1">
        <meta property="og:image:width" content="1200"><meta property="og:site_name" content="News"></head></html>`),
    ).toEqual({
      "og:title": 'Open "Graph"',
      "og:description": "Plain & simple",
      "og:site_name": "News",
      "og:image": "https://news.example/img/a.png?x=1",
      "og:image:width": "1200",
    });
    expect(read("<title>Only this</title>")).toEqual({ "og:title": "Only this" });
    expect(read(`<meta name="twitter:title" content="Card"><meta name="twitter:image" content="javascript:alert(1)">`)).toEqual({ "og:title": "Card" });
    expect(read("<script>var t = '<meta property=\"og:title\" content=\"no\">';</script><p>text</p>")).toEqual({});
  });

  test("without a charset in the header, the page's own <meta charset> decides", () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('<meta charset="windows-1251"><title>'), 0xcf, 0xf0, 0xe8, 0xe2, 0xb3, 0xf2, ...new TextEncoder().encode("</title>")]);
    expect(openGraphOf(bytes, null, page)["og:title"]).toBe("Привіт");
  });
});
