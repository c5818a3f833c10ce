// The admin page in a real Chromium (Debian's, via executablePath; a
// browser is never downloaded). Run by tests/api/browser.rs, which starts
// the real binary, seeds it and passes everything in SCENARIO (JSON):
//   chromium, baseUrl, loginLink, noPermissionLink, apiToken, screenshots,
//   expected: { last30: {totals, topComponent}, last7: {totals, startDate, endDate} }
// Exits non-zero with a message on the first failed expectation.

import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";

const s = JSON.parse(process.env.SCENARIO);
const browser = await chromium.launch({
  executablePath: s.chromium,
  // Root in CI containers: Chromium's sandbox needs user namespaces.
  args: ["--no-sandbox"],
});
const problems = [];

function watch(page) {
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
}

async function totalsOnPage(page) {
  const out = {};
  for (const el of await page.locator("[data-total]").all()) {
    out[await el.getAttribute("data-total")] = Number((await el.textContent()).replace(/,/g, ""));
  }
  return out;
}

async function waitShowing(page, label) {
  await page.locator("#showing").filter({ hasText: "Showing " + label }).waitFor({ timeout: 15000 });
}

try {
  // ---- an administrator signs in through a login link ----------------------
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  watch(page);
  const redeemed = page.waitForResponse((r) => r.url().endsWith("/auth/login-link"));
  await page.goto(s.loginLink);
  assert.equal((await redeemed).status(), 200, "the link's code is redeemed");
  assert.equal((await redeemed).request().postDataJSON().code, new URL(s.loginLink).hash.replace("#code=", ""),
    "the code goes in the body, not the URL");
  await waitShowing(page, "the last 30 days");
  assert.equal(new URL(page.url()).hash, "", "the code leaves the address bar");
  assert.deepEqual(await totalsOnPage(page), s.expected.last30.totals, "totals of the last 30 days");
  assert.ok(await page.locator("#chart svg rect.bar").count() > 20, "the chart has bars");
  assert.match(await page.locator("#chart svg").getAttribute("aria-label"), /^Events per day by type/);
  assert.equal(await page.locator("#top-components tbody tr").count(), 10);
  assert.match(await page.locator("#top-components tbody tr").first().textContent(), new RegExp(s.expected.last30.topComponent));
  assert.equal(await page.getByRole("button", { name: "Last 30 days" }).getAttribute("aria-pressed"), "true");
  await page.screenshot({ path: path.join(s.screenshots, "admin-1280.png"), fullPage: true });

  // ---- switch to the last 7 days with the keyboard only ---------------------
  await page.getByRole("button", { name: "Last 7 days" }).focus();
  await page.keyboard.press("Enter");
  await waitShowing(page, "the last 7 days");
  const last7 = await totalsOnPage(page);
  assert.deepEqual(last7, s.expected.last7.totals, "totals of the last 7 days");
  assert.notDeepEqual(last7, s.expected.last30.totals);

  // ---- Download CSV: byte-identical to the API's, same file name ------------
  const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#download").click()]);
  const fromPage = await readFile(await download.path());
  const api = await fetch(
    `${s.baseUrl}/library/components/analytics/download?startDate=${s.expected.last7.startDate}&endDate=${s.expected.last7.endDate}`,
    { headers: { Authorization: "Bearer " + s.apiToken } },
  );
  assert.equal(api.status, 200);
  const fromApi = Buffer.from(await api.arrayBuffer());
  assert.ok(fromApi.length > 500, "the window holds rows");
  assert.ok(fromPage.equals(fromApi), "the page's CSV is byte-identical to the API's");
  const apiName = /filename="([^"]+)"/.exec(api.headers.get("content-disposition"))[1];
  assert.equal(download.suggestedFilename(), apiName);

  // ---- 375 px wide: readable, no horizontal scrolling -----------------------
  await page.setViewportSize({ width: 375, height: 812 });
  await page.getByRole("button", { name: "Last 30 days" }).click();
  await waitShowing(page, "the last 30 days");
  await page.waitForTimeout(400); // the chart redraws after resizing settles
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, "no horizontal scrolling at 375 px");
  await page.screenshot({ path: path.join(s.screenshots, "admin-375.png"), fullPage: true });
  await context.close();

  // ---- a user without the permission sees it in plain words -----------------
  const other = await browser.newContext({ viewport: { width: 1280, height: 700 } });
  const denied = await other.newPage();
  await denied.goto(s.noPermissionLink);
  const error = denied.locator("#error");
  await error.waitFor({ state: "visible", timeout: 15000 });
  assert.equal(await error.textContent(), "You need the View Analytics permission in this organization.");
  await denied.screenshot({ path: path.join(s.screenshots, "admin-403.png") });
  await other.close();

  // ---- the same link a second time: refused in plain words --------------------
  const again = await browser.newContext({ viewport: { width: 375, height: 812 } });
  const reopened = await again.newPage();
  const refusal = reopened.waitForResponse((r) => r.url().endsWith("/auth/login-link"));
  await reopened.goto(s.loginLink);
  assert.equal((await refusal).status(), 401, "a used code is refused");
  const message = reopened.locator("#error");
  await message.waitFor({ state: "visible", timeout: 15000 });
  assert.equal(await message.textContent(),
    "This sign-in link has already been used or has expired — ask for a new one.");
  assert.equal(new URL(reopened.url()).hash, "", "the used code leaves the address bar too");
  assert.ok(await reopened.locator("#sign-in-local").isVisible(), "how to get a new link is shown");
  assert.ok(await reopened.locator("#app").isHidden(), "nothing else is shown");
  await reopened.screenshot({ path: path.join(s.screenshots, "admin-link-used.png") });
  await again.close();

  assert.deepEqual(problems, [], "no console or page errors for the administrator");
  console.log("admin page scenario passed");
} finally {
  await browser.close();
}
