// Drives the test-bed page in real Chromium (the Debian package) with playwright-core.
// Run by e2e/tests/browser.rs:
//
//   node test-bed/tests/page.mjs '{"mode":"compare","url":"http://127.0.0.1:PORT/","artifacts":"DIR"}'
//   node test-bed/tests/page.mjs '{"mode":"outage", ...}'
//
// compare: sets the prototype's profile (100% / 100% / 90% failures) with the keyboard on the
//   sliders, runs round robin against Thompson sampling with single attempts, and checks the
//   page's figures: round robin within a band around 3.3%, Thompson sampling clearly higher.
//   Saves a screenshot and the page's JSON export. Prints one JSON line with the figures.
// outage: starts a long run, prints READY_FOR_OUTAGE and waits for "router-stopped" on stdin,
//   checks the visible message and that the run stopped; prints ROUTER_MESSAGE_OK, waits for
//   "learner-stopped", checks the learner message, prints LEARNER_MESSAGE_OK.
// Any failed check throws: the process exits non-zero with the reason on stderr.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2] || "{}");
const requests = cfg.requests ?? 1500;
mkdirSync(cfg.artifacts, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const stdinLines = createInterface({ input: process.stdin });
const pending = [];
stdinLines.on("line", (line) => pending.push(line.trim()));
async function waitForLine(expected, timeoutMs = 120000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const i = pending.indexOf(expected);
    if (i >= 0) {
      pending.splice(i, 1);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no "${expected}" on stdin in ${timeoutMs} ms`);
}

const profile = mkdtempSync(join(tmpdir(), "magnetar-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: { width: 1400, height: 1000 },
  acceptDownloads: true,
});
const page = context.pages()[0] || (await context.newPage());
const consoleErrors = [];
// Failed requests (the router's 502s, by design) are logged as console errors: only scripts'
// errors count.
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(String(e)));

async function ready() {
  await page.goto(cfg.url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
  await page.waitForSelector("#fleet-table tbody tr", { timeout: 30000 });
  await page.waitForSelector("#router-pill.up", { timeout: 30000 });
}

async function chooseAlgos(algos) {
  await page.click("#algos-none");
  for (const a of algos) await page.check(`#algo-${a}`);
}

async function compare() {
  await ready();
  const rows = await page.locator("#fleet-table tbody tr").count();
  check(rows === 3, `the page shows the 3 downstreams of the fleet (got ${rows})`);
  // The prototype's profile, with the keyboard: End = 100%, then 10 × ArrowDown = 90%.
  for (let i = 0; i < 3; i++) {
    await page.selectOption(`#mode-${i}`, "percentage_fail");
    await page.focus(`#fail-${i}`);
    await page.keyboard.press("End");
  }
  for (let k = 0; k < 10; k++) await page.keyboard.press("ArrowDown");
  const shown = await Promise.all([0, 1, 2].map((i) => page.textContent(`#fail-out-${i}`)));
  check(shown.join(" ") === "100% 100% 90%", `sliders show the prototype's profile (got ${shown})`);
  await page.selectOption("#max-attempts", "1");
  const oracle = await page.textContent("#oracle-text");
  check(oracle.includes("10.0%"), `oracle for the prototype with one attempt is 10% (got "${oracle}")`);

  await chooseAlgos(["round_robin", "thompson"]);
  await page.fill("#requests", String(requests));
  await page.check("#shape-concurrency");
  await page.fill("#concurrency", "6");
  // Start with the keyboard too.
  await page.focus("#start");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#run-status[data-state]", { timeout: 600000 });
  const state = await page.getAttribute("#run-status", "data-state");
  check(state === "done", `the run finished (state ${state}: ${await page.textContent("#run-status")})`);

  const rate = async (algo) => Number(await page.getAttribute(`#summary-table tr[data-algo=${algo}]`, "data-success-rate"));
  const rr = await rate("round_robin");
  const ts = await rate("thompson");
  const figures = await page.evaluate(() => window.magnetar.run.lanes.map((l) => ({
    label: l.label,
    requests: l.samples.length,
    attempts: l.samples.reduce((t, s) => t + s.attempts, 0),
    summary: l.summary,
  })));
  for (const f of figures) {
    check(f.requests === requests, `${f.label} sent ${requests} requests (got ${f.requests})`);
    check(f.attempts === requests, `${f.label}: single attempts only (got ${f.attempts} attempts)`);
  }
  // Round robin sends a third of the requests to downstream-3, which succeeds 10% of the time:
  // Binomial(n/3, 0.1) successes, mean n/30, so with n = 1,500 the rate is 3.33% ± 0.45 (sd);
  // the band ±1.5 points is 3.3 sd.
  check(Math.abs(rr - 1 / 30) <= 0.015, `round robin ${(rr * 100).toFixed(2)}% within 3.33% ± 1.5`);
  // Thompson sampling moves most traffic to downstream-3 (oracle 10%); "clearly higher": at
  // least 6% and 2.5 points above round robin.
  check(ts >= 0.06 && ts >= rr + 0.025, `thompson ${(ts * 100).toFixed(2)}% clearly above round robin ${(rr * 100).toFixed(2)}%`);

  const definition = await page.textContent("#success-definition");
  check(/below 500/.test(definition), `the page shows the router's success definition (got "${definition}")`);
  const datasets = await page.evaluate(() => window.magnetar.charts.success.data.datasets.length);
  check(datasets === 2, `the success chart draws both strategies (got ${datasets})`);
  const shareRows = await page.evaluate(() => window.magnetar.charts.share.data.datasets.length);
  check(shareRows === 3, `the share chart has one series per downstream (got ${shareRows})`);

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-json")]);
  const exported = join(cfg.artifacts, "test-bed-export.json");
  await download.saveAs(exported);
  const [csv] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
  await csv.saveAs(join(cfg.artifacts, "test-bed-export.csv"));

  await page.waitForTimeout(2500); // one posterior refresh
  await page.screenshot({ path: join(cfg.artifacts, "test-bed.png"), fullPage: true });
  check(consoleErrors.length === 0, `no script errors (got ${consoleErrors.slice(0, 5).join(" | ")})`);
  console.log(JSON.stringify({ round_robin: rr, thompson: ts, lanes: figures.map((f) => f.summary) }));
}

async function outage() {
  await ready();
  await page.waitForSelector("#learner-pill.up", { timeout: 30000 });
  await chooseAlgos(["round_robin"]);
  await page.fill("#requests", "100000");
  await page.check("#shape-rate");
  await page.fill("#rate", "10");
  await page.click("#start");
  await page.waitForFunction(() => window.magnetar.run && window.magnetar.run.lanes[0]?.samples.length >= 20, null, { timeout: 60000 });
  console.log("READY_FOR_OUTAGE");
  await waitForLine("router-stopped");

  await page.waitForSelector("#alert-router:not([hidden])", { timeout: 20000 });
  const message = await page.textContent("#alert-router");
  check(/router .* not answering/i.test(message), `a visible router message (got "${message}")`);
  await page.waitForSelector("#run-status[data-state=stopped]", { timeout: 40000 });
  check(await page.isVisible("#stale"), "the charts say that no new data comes");
  check(/not answering/.test(await page.textContent("#router-pill")), "the router pill says so");
  const before = await page.evaluate(() => window.magnetar.run.lanes[0].samples.length);
  await page.waitForTimeout(1500);
  const after = await page.evaluate(() => window.magnetar.run.lanes[0].samples.length);
  check(before === after, `no requests after the stop (${before} then ${after})`);
  check(await page.isEnabled("#start"), "a new run can be started");
  await page.screenshot({ path: join(cfg.artifacts, "test-bed-router-stopped.png"), fullPage: true });
  console.log("ROUTER_MESSAGE_OK");

  await waitForLine("learner-stopped");
  await page.waitForSelector("#alert-learner:not([hidden])", { timeout: 20000 });
  const learnerMessage = await page.textContent("#alert-learner");
  check(/learner .* not answering/i.test(learnerMessage), `a visible learner message (got "${learnerMessage}")`);
  check(/not answering/.test(await page.textContent("#learner-pill")), "the learner pill says so");
  await page.screenshot({ path: join(cfg.artifacts, "test-bed-learner-stopped.png"), fullPage: true });
  console.log("LEARNER_MESSAGE_OK");
}

let failed = null;
try {
  if (cfg.mode === "compare") await compare();
  else if (cfg.mode === "outage") await outage();
  else throw new Error(`unknown mode ${cfg.mode}`);
} catch (e) {
  failed = e;
  try {
    await page.screenshot({ path: join(cfg.artifacts, `failure-${cfg.mode}.png`), fullPage: true });
    writeFileSync(join(cfg.artifacts, `failure-${cfg.mode}.html`), await page.content());
  } catch {
    // the page may be gone
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  stdinLines.close();
}
if (failed) {
  console.error(failed.stack || String(failed));
  process.exit(1);
}
process.exit(0);
