/**
 * The dashboard (`GET /`) in a real browser: Debian's chromium through
 * playwright-core, against the real nexus-node binary on the embedded
 * default. The page is loaded once. The recorded escrow scenario is then
 * delivered to the node's observer; without a reload the page must show the
 * new events and figures, resume its feed after a node restart from the last
 * seq it saw, list dead letters with the API key typed into it, and ask
 * nothing of any host but the node. A screenshot goes to
 * `test-results/dashboard/`.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";

import { Node } from "../x402/node";
import { browserPlan, launch } from "./browser";
import { deliver, deliveries } from "./scenario";

const OUT = fileURLToPath(new URL("../../test-results/dashboard/", import.meta.url));
const API_KEY = "dashboard-test-key-0123456789";
const plan = browserPlan();

/** The node's event head: what a fresh `subscribe` answers as `head_seq`. */
async function headSeq(api: string): Promise<number> {
  const ws = new WebSocket(`${api.replace("http", "ws")}/ws`);
  try {
    return await new Promise<number>((ok, fail) => {
      ws.once("error", fail);
      ws.once("open", () => ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscribe", params: { event: "all" } })));
      ws.on("message", (data) => {
        const m = JSON.parse(String(data));
        if (m.id !== 1) return;
        if (m.result) ok(m.result.head_seq);
        else fail(new Error(JSON.stringify(m.error)));
      });
    });
  } finally {
    ws.close();
  }
}

describe.skipIf(!plan.run)("dashboard in chromium", () => {
  const dir = mkdtempSync(join(tmpdir(), "nexus-dashboard-"));
  const env = {
    // Both nodes share one history file: the second is the first, restarted.
    NEXUS_SQLITE_PATH: join(dir, "nexus.sqlite"),
    NEXUS_API_KEYS: JSON.stringify([API_KEY]),
    // An RPC provider nothing listens on: its breaker opens and /health says degraded.
    NEXUS_RPC_URL: "http://127.0.0.1:9",
    NEXUS_RPC_TIMEOUT_MS: "500",
    NEXUS_RECONCILE_INTERVAL_SECS: "1",
  };
  const nodes: Node[] = [];
  let browser: Browser | undefined;
  let page: Page;
  const requests: string[] = [];
  const problems: string[] = [];
  let navigations = 0;

  beforeAll(async () => {
    if (plan.failure) throw new Error(plan.failure);
    nodes.push(new Node(env));
    await nodes[0].start();
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("request", (r) => requests.push(r.url()));
    page.on("websocket", (ws) => requests.push(ws.url()));
    page.on("framenavigated", (f) => f === page.mainFrame() && navigations++);
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    // Refused connections while the node restarts are expected; a policy violation never is.
    page.on("console", (m) => /Content.Security.Policy|Refused to/i.test(m.text()) && problems.push(m.text()));
  });

  afterAll(async () => {
    await browser?.close();
    for (const n of nodes) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const figure = (key: string) => page.locator(`[data-figure="${key}"] .value`).innerText();
  const conn = () => page.getAttribute("#conn", "data-state");
  const shownSeqs = async () => (await page.locator("#feed tr td:first-child").allInnerTexts()).map(Number);

  it("shows the feed and the figures live, resumes after a restart, and talks only to the node", async () => {
    const node = nodes[0];
    await page.goto(`${node.api}/`);
    await expect.poll(conn).toBe("live");
    await expect.poll(() => figure("tip")).toBe("0");
    expect(await figure("confirmed")).toBe("0");

    // Blocks 1..10: four payments created, one claimed, two failed calls.
    const all = deliveries();
    const cut = all.findIndex((d) => d.height > 10);
    await deliver(node.observer, all.slice(0, cut));
    const firstHead = await headSeq(node.api);
    expect(firstHead).toBeGreaterThan(0);
    await expect.poll(shownSeqs, { timeout: 15_000 }).toEqual(Array.from({ length: firstHead }, (_, i) => firstHead - i));
    expect(await page.locator('#feed tr[data-type="payment:confirmed"]').count()).toBeGreaterThan(0);
    await expect.poll(() => figure("tip"), { timeout: 15_000 }).toBe("10");
    expect(Number(await figure("confirmed"))).toBeGreaterThan(0);
    expect(await figure("success")).toMatch(/%$/);

    // The providers and their breakers, from /health.
    await expect.poll(() => page.locator("#providers").innerText(), { timeout: 20_000 }).toMatch(/127\.0\.0\.1:9\s+open/);
    expect(await page.getAttribute("#health", "data-state")).toBe("degraded");

    // The key typed into the page lists the (admin-only) dead letters.
    await page.fill("#key", API_KEY);
    await page.click("#key-form button[type=submit]");
    await expect.poll(() => page.locator("#dead-list").innerText(), { timeout: 15_000 }).toMatch(/^(none|\d{4}-)/);

    // Restart the node on the same ports and history: the page reconnects
    // with backoff and resumes after the last seq it saw.
    await node.stop();
    await expect.poll(conn).toBe("reconnecting");
    const port = (url: string) => new URL(url).host;
    const second = new Node({ ...env, NEXUS_API_ADDR: port(node.api), NEXUS_OBSERVER_ADDR: port(node.observer) });
    nodes.push(second);
    await second.start();
    await expect.poll(() => page.locator("#conn").innerText(), { timeout: 30_000 }).toContain(`resumed after seq ${firstHead}`);

    // The rest: expiries refunded, a pause, a payment while paused, p7 created and claimed.
    await deliver(node.observer, all.slice(cut));
    const head = await headSeq(node.api);
    expect(head).toBeGreaterThan(firstHead);
    // Every seq exactly once, newest first, without a reload.
    await expect.poll(shownSeqs, { timeout: 15_000 }).toEqual(Array.from({ length: head }, (_, i) => head - i));
    await expect.poll(() => figure("tip"), { timeout: 15_000 }).toBe("117");
    expect(Number(await figure("confirmed"))).toBeGreaterThan(0); // counted since the restart
    expect(navigations).toBe(1);

    expect(await page.locator('[data-figure="tip"] polyline').getAttribute("points")).toMatch(/\d,\d.* \d/);
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, "dashboard.png"), fullPage: true });

    // A stalled observer (node/tests/stalled.rs makes the node report a real
    // one): the page shows /health's `stalled` in a banner, and drops it once
    // /health stops saying so.
    const stalled = { error: "history store: block writes refused", since: "2026-01-01T00:00:00Z", failures: 3 };
    await page.route("**/health", async (route) => {
      const real = await route.fetch();
      await route.fulfill({ response: real, json: { ...(await real.json()), status: "stalled", stalled } });
    });
    await expect.poll(() => page.locator("#stalled").isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await page.locator("#stalled").innerText()).toContain(stalled.error);
    expect(await page.getAttribute("#health", "data-state")).toBe("stalled");
    await page.locator("header").scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(OUT, "stalled.png") });
    await page.unroute("**/health");
    await expect.poll(() => page.locator("#stalled").isVisible(), { timeout: 15_000 }).toBe(false);

    const origin = new URL(node.api).host;
    const elsewhere = requests.filter((u) => !u.startsWith("data:") && new URL(u).host !== origin);
    expect(elsewhere).toEqual([]);
    expect(requests.some((u) => u.endsWith("/metrics"))).toBe(true);
    expect(problems).toEqual([]);
  }, 120_000);
});
