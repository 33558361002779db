import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { requireServices } from "./services.ts";

/** Debian's Chromium, which .ci/run installs with apt-get. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Whether a browser suite should skip: no Chromium here. Under REQUIRE_SERVICES=1 its absence fails instead. */
export function chromiumMissing(): boolean {
  if (existsSync(CHROMIUM_PATH)) return false;
  if (requireServices) throw new Error(`REQUIRE_SERVICES=1 but ${CHROMIUM_PATH} is missing (apt-get install -y chromium)`);
  return true;
}

/**
 * Headless Chromium for tests, with nothing that reaches outside the machine. Playwright gives
 * it a fresh temporary profile (its --user-data-dir) on every launch and removes it on close.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
