import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { requireServices } from "../helpers/services.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

/**
 * /docs in real Chromium (Debian's /usr/bin/chromium) with every host but 127.0.0.1 blocked:
 * the page must render the operations from the app's own files. Without Chromium the suite
 * skips, except under REQUIRE_SERVICES=1 (CI), where a missing Chromium fails it. Playwright
 * starts it on a fresh, temporary profile.
 */
setDefaultTimeout(60_000);

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);

describe.skipIf(!haveChromium && !requireServices)("docs UI offline, in Chromium", () => {
  let server: TestServer;
  let browser: Browser;
  beforeAll(async () => {
    if (!haveChromium) throw new Error(`REQUIRE_SERVICES=1 but Chromium is missing at ${CHROMIUM} (apt-get install chromium)`);
    server = await startTestServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("renders every operation from local files, with no request leaving the machine", async () => {
    const context = await browser.newContext();
    const blocked: string[] = [];
    const served: string[] = [];
    await context.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === "127.0.0.1") {
        served.push(url.pathname);
        return route.continue();
      }
      blocked.push(url.href);
      return route.abort("blockedbyclient");
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await page.goto(`${server.url}/docs`);
    for (const id of ["listChannels", "sendMessage", "postAsAgent", "createChannel"]) {
      await page.getByText(id, { exact: true }).first().waitFor({ state: "visible", timeout: 20_000 });
    }
    const summaries = await page.locator(".opblock-summary-path").allInnerTexts();
    expect(summaries.map((s) => s.replace(/\u200b/g, ""))).toEqual(expect.arrayContaining(["/api/messaging/channels", "/api/messaging/channels/{id}/messages"]));
    expect(await page.locator(".opblock").count()).toBeGreaterThan(25);
    expect(served).toEqual(expect.arrayContaining(["/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/json"]));
    expect(blocked).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });
});
