/**
 * Debian's chromium for the dashboard's browser test, driven by
 * playwright-core (which never downloads a browser of its own). Without
 * chromium the test is skipped with a note printed once; with
 * `NEXUS_REQUIRE_BROWSER=1` (set by `.ci/run`) it fails instead.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** What to do about the browser: run, skip (no chromium), or fail (no chromium, but required). */
export type BrowserPlan = { run: boolean; failure?: string };

let noted = false;

export function browserPlan(): BrowserPlan {
  if (existsSync(CHROMIUM)) return { run: true };
  const missing = `no chromium at ${CHROMIUM}: the dashboard's browser test needs it (Debian: apt-get install chromium)`;
  if (process.env.NEXUS_REQUIRE_BROWSER === "1") {
    return { run: true, failure: `NEXUS_REQUIRE_BROWSER=1 and ${missing}` };
  }
  if (!noted) console.log(`note: ${missing}; skipped`);
  noted = true;
  return { run: false };
}

/**
 * A headless chromium that reaches nothing by itself: no background
 * networking, component updates, sync or QUIC. `launch` gives every run a
 * fresh temporary profile (user-data dir), removed on close.
 */
export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
      "--disable-quic",
    ],
  });
}
