// Issuer mode end to end: a real OpenID provider (`oidc-provider`) on
// 127.0.0.1, the admin page as its public client (authorization code +
// PKCE), signing in through the provider's own login and consent pages in
// Debian's Chromium. Run by tests/api/browser.rs, which started catalytics
// with `--issuer` pointing at the port it passes here. SCENARIO (JSON):
//   chromium, baseUrl, issuerPort, clientId, org, user, audience,
//   screenshots, expected: { last30: { totals } }

import Provider from "oidc-provider";
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import path from "node:path";

const s = JSON.parse(process.env.SCENARIO);
const issuer = `http://127.0.0.1:${s.issuerPort}`;
const RESOURCE = "urn:catalytics";

const provider = new Provider(issuer, {
  clients: [{
    client_id: s.clientId,
    token_endpoint_auth_method: "none", // a public client: no secret, PKCE instead
    redirect_uris: [s.baseUrl + "/"],
    grant_types: ["authorization_code"],
    response_types: ["code"],
  }],
  scopes: ["openid", "email", "itwin-platform"],
  claims: { openid: ["sub"], email: ["email"] },
  cookies: { keys: ["browser-test-only"] },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id, email: `${id}@example.com` }) }),
  features: {
    devInteractions: { enabled: true }, // the provider's own login and consent pages
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "itwin-platform",
        audience: s.audience,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
  // The claims catalytics reads from an access token.
  extraTokenClaims: (ctx, token) => ({ org: s.org, email: `${token.accountId}@example.com` }),
});
const server = provider.listen(s.issuerPort, "127.0.0.1");
await new Promise((resolve, reject) => { server.once("listening", resolve); server.once("error", reject); });

const browser = await chromium.launch({ executablePath: s.chromium, args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const authorizations = [];
  page.on("request", (r) => { if (r.url().startsWith(issuer + "/auth?")) authorizations.push(new URL(r.url())); });
  await page.goto(s.baseUrl + "/");
  await page.getByRole("button", { name: "Sign in" }).click();

  // The provider's pages: any login works, then consent.
  await page.waitForURL((u) => u.origin === issuer, { timeout: 15000 });
  await page.locator("input[name=login]").fill(s.user);
  await page.locator("input[name=password]").fill("irrelevant");
  await page.locator("button[type=submit]").click();
  await page.getByRole("button", { name: "Continue" }).click();

  // Back on the page, signed in.
  await page.waitForURL((u) => u.origin === s.baseUrl, { timeout: 15000 });
  await page.locator("#showing").filter({ hasText: "Showing the last 30 days" }).waitFor({ timeout: 15000 });
  assert.equal(page.url(), s.baseUrl + "/", "the code and state leave the address bar");
  assert.equal(await page.locator("#who").textContent(), `Signed in as ${s.user}@example.com · organization ${s.org}`);
  const totals = {};
  for (const el of await page.locator("[data-total]").all()) {
    totals[await el.getAttribute("data-total")] = Number((await el.textContent()).replace(/,/g, ""));
  }
  assert.deepEqual(totals, s.expected.last30.totals);
  // Tokens are kept in memory only.
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0]);
  assert.deepEqual(errors, []);
  await page.screenshot({ path: path.join(s.screenshots, "admin-oidc.png") });
  assert.equal(authorizations.length, 1);
  const auth = authorizations[0].searchParams;
  assert.equal(auth.get("response_type"), "code");
  assert.equal(auth.get("code_challenge_method"), "S256");
  assert.equal(auth.get("client_id"), s.clientId);
  console.log("issuer sign-in passed");
  await context.close();
} finally {
  await browser.close();
  server.close();
}
