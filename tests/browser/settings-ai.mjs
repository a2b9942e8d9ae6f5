// Drives the portal's Settings → AI page in headless Chromium (Debian's /usr/bin/chromium,
// never a downloaded browser): sign in with an API token, see the current state, Test
// Connection, save a bad key (kept as a draft, previous setting stays), save a good one, and
// check that no key ever appears in the page. Saves a screenshot.
//
// Started by tests/tests/browser.rs, which runs the control plane and a fake provider and
// passes them in: CP_URL, API_TOKEN, ENDPOINT, GOOD_KEY, BAD_KEY, SCREENSHOT.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const CP_URL = env("CP_URL");
const API_TOKEN = env("API_TOKEN");
const ENDPOINT = env("ENDPOINT");
const GOOD_KEY = env("GOOD_KEY");
const BAD_KEY = env("BAD_KEY");
const SCREENSHOT = env("SCREENSHOT");

function check(cond, message) {
  if (!cond) throw new Error("assertion failed: " + message);
}

const userData = mkdtempSync(join(tmpdir(), "atlasai-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userData, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 1100 },
    timeout: 60_000,
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  // Expected API refusals (401 for a wrong token, 422 for a bad key) show as failed resource
  // loads; everything else logged as an error is a bug.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.setDefaultTimeout(20_000);

  // Signing in through the form.
  await page.goto(CP_URL + "/portal");
  await page.waitForSelector("#signin:not([hidden])");
  await page.fill("#api-token", "atl_wrong");
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.includes("unknown or revoked"));
  await page.fill("#api-token", API_TOKEN);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("body[data-loaded=true]");
  check((await page.textContent("#cur-status")).includes("not configured"), "starts not configured");
  check((await page.textContent("#who")).includes("acme · owner"), "shows who is signed in");
  check((await page.textContent("#balance")) === "25.000", "shows the credit balance");

  // Test Connection with the form values, without saving.
  await page.selectOption("#f-provider", "openai");
  await page.fill("#f-model", "llama3.2");
  await page.fill("#f-endpoint_url", ENDPOINT);
  await page.fill("#f-api_key", GOOD_KEY);
  await page.click("#test");
  await page.waitForFunction(() => document.getElementById("result").textContent.startsWith("Connection OK"));

  // The model picker lists what the key can use.
  await page.click("#load-models");
  await page.waitForFunction(() => document.querySelectorAll("#model-list option").length > 0);

  // Save a good key: active.
  await page.click("#save");
  await page.waitForSelector("body[data-saved=active]");
  check((await page.textContent("#cur-status")) === "connected", "connected after a good save");
  check((await page.textContent("#cur-provider")) === "openai", "provider shown");
  check((await page.getAttribute("#f-api_key", "placeholder")).includes("(…1234)"), "the key shows only as set with its last four");

  // Save a bad key: kept as a draft with the provider's reason; the active setting stays.
  await page.fill("#f-model", "llama3.2");
  await page.fill("#f-api_key", BAD_KEY);
  await page.click("input[name=fallback_policy][value=cloud_fallback]");
  await page.click("#save");
  await page.waitForSelector("body[data-saved=draft]");
  const result = await page.textContent("#result");
  check(result.includes("Not activated") && result.includes("Incorrect API key"), "bad key reason shown: " + result);
  check((await page.textContent("#cur-status")).includes("last save failed"), "status says the last save failed");
  check((await page.textContent("#cur-model")) === "llama3.2", "the active model stays");

  // Save the good key again with the cloud fallback, for the screenshot.
  await page.fill("#f-api_key", GOOD_KEY);
  await page.click("input[name=fallback_policy][value=cloud_fallback]");
  await page.click("#save");
  await page.waitForSelector("body[data-saved=active]");
  await page.waitForFunction(() => document.getElementById("cur-fallback").textContent === "Fall back to Atlas Cloud");
  check((await page.textContent("#clusters")).includes("prod-eu"), "clusters listed");
  check((await page.textContent("#ledger")).includes("BYOC usage"), "recent usage listed");

  const html = await page.content();
  check(!html.includes(GOOD_KEY) && !html.includes(BAD_KEY), "no key in the page");
  check(consoleErrors.length === 0, "no console errors: " + consoleErrors.join("; "));

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log("browser test passed; screenshot " + SCREENSHOT);
} catch (e) {
  console.error("browser test failed: " + (e && e.stack ? e.stack : e));
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userData, { recursive: true, force: true });
}
