// Load the dashboard in headless Chromium (Debian's, driven by playwright-core) as a person
// would, and print what it shows as JSON: the service rows, the summary, the L1 latency, alerts.
// Usage: node tests/browser/dashboard.mjs URL [SCREENSHOT.png]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "dashboard-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1100, height: 720 },
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
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url, { waitUntil: "load", timeout: 30_000 });
  await page.waitForSelector("[data-testid=l1-latency], [role=alert]", { timeout: 30_000 });
  await page.waitForSelector("[data-testid^=service-], [role=alert]", { timeout: 30_000 });
  const shown = await page.evaluate(() => ({
    title: document.title,
    rows: [...document.querySelectorAll("[data-testid^=service-]")].map((row) => [...row.querySelectorAll("td")].map((td) => td.textContent)),
    summary: document.querySelector("[data-testid=summary]")?.textContent ?? null,
    l1: document.querySelector("[data-testid=l1-latency]")?.textContent ?? null,
    alerts: [...document.querySelectorAll("[role=alert]")].map((alert) => alert.textContent),
  }));
  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true });
  }
  console.log(JSON.stringify({ ...shown, errors }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
