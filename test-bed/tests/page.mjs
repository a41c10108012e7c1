// Drives the test-bed page in real Chromium (the Debian package) with playwright-core.
// Run by e2e/tests/browser.rs:
//
//   node test-bed/tests/page.mjs '{"mode":"compare","url":"http://127.0.0.1:PORT/","artifacts":"DIR",
//                                  "learner":"http://127.0.0.1:PORT","configured":[{mode,percentage_fail,delay_ms},...]}'
//   node test-bed/tests/page.mjs '{"mode":"outage", ..., "unreachable":"downstream-3"}'
//
// compare: checks that the controls show each downstream's own configuration on load
//   (`configured`), sets the prototype's profile (100% / 100% / 90% failures) with the keyboard on
//   the sliders, runs round robin against Thompson sampling interleaved with single attempts, and
//   checks the page's figures: round robin within a band around 3.3%, Thompson sampling clearly
//   higher; that request i of both strategies left together with the same fleet behaviour; the
//   latency and regret charts have data; the posteriors panel shows the learner's posteriors for
//   Thompson's route. Saves a screenshot and the page's exports. Then, in a fixed-rate run, sets
//   every downstream to All_fail and checks that the next requests of both strategies fail, then
//   to All_Success with a 300 ms delay and checks that the next ones succeed that slowly. Prints
//   one JSON line with the figures.
// outage: checks the note for a downstream whose configuration cannot be read (`unreachable`),
//   starts a long run, prints READY_FOR_OUTAGE and waits for "learner-stopped" on stdin: checks the
//   learner message and that the run and its charts go on (router up); prints LEARNER_MESSAGE_OK,
//   waits for "router-stopped", checks the visible message and that the run stopped; prints
//   ROUTER_MESSAGE_OK; reloads the page with the router down and checks the message a fresh page
//   shows; prints LOAD_MESSAGE_OK.
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

async function samplesOf() {
  return page.evaluate(() => window.magnetar.run.lanes.map((l) => ({
    label: l.label,
    samples: l.samples.map((x) => ({ index: x.index, success: x.success, latency_ms: x.latency_ms, config_version: x.config_version, sent_ms: x.sent_ms, attempts: x.attempts })),
  })));
}

async function waitForIndex(minIndex, timeout = 60000) {
  await page.waitForFunction(
    (k) => window.magnetar.run.lanes.every((l) => l.samples.some((x) => x.index >= k)),
    minIndex,
    { timeout },
  );
}

/** Every index both lanes answered carries the same fleet behaviour and left at the same time. */
function checkInterleaved(lanes) {
  const byIndex = lanes.map((l) => new Map(l.samples.map((x) => [x.index, x])));
  let compared = 0;
  for (const [index, a] of byIndex[0]) {
    const b = byIndex[1].get(index);
    if (!b) continue;
    compared += 1;
    check(a.config_version === b.config_version, `request ${index}: same fleet behaviour in both strategies (${a.config_version} vs ${b.config_version})`);
    check(a.sent_ms === b.sent_ms, `request ${index} left together (${a.sent_ms} vs ${b.sent_ms})`);
  }
  check(compared > 0, "both strategies answered requests");
}

async function setAll(mode, delay) {
  for (let i = 0; i < 3; i++) {
    await page.selectOption(`#mode-${i}`, mode);
    if (delay !== undefined) await page.fill(`#delay-${i}`, String(delay));
  }
}

async function compare() {
  await ready();
  const rows = await page.locator("#fleet-table tbody tr").count();
  check(rows === 3, `the page shows the 3 downstreams of the fleet (got ${rows})`);
  // The controls start from each downstream's own configuration.
  await page.waitForFunction(() => window.magnetar.configured.length === 3 && window.magnetar.configured.every((c) => c));
  for (const [i, want] of cfg.configured.entries()) {
    const mode = await page.inputValue(`#mode-${i}`);
    const fail = await page.textContent(`#fail-out-${i}`);
    const delay = await page.inputValue(`#delay-${i}`);
    check(mode === want.mode, `downstream-${i + 1} mode on load is its own ${want.mode} (got ${mode})`);
    check(fail === `${want.percentage_fail}%`, `downstream-${i + 1} failure % on load is its own ${want.percentage_fail}% (got ${fail})`);
    check(Number(delay) === want.delay_ms, `downstream-${i + 1} delay on load is its own ${want.delay_ms} ms (got ${delay})`);
  }
  check(await page.isHidden("#fleet-note"), "no fallback note when every downstream reports its configuration");
  // The best possible figure is exact for these modes, an estimate for rate_limited and cyclic_outage.
  check(await page.getAttribute("#oracle-text", "data-estimate") === "false", "an exact oracle for the configured modes");
  for (const mode of ["rate_limited", "cyclic_outage"]) {
    await page.selectOption("#mode-0", mode);
    const text = await page.textContent("#oracle-text");
    check(/estimate/.test(text) && text.includes(mode), `the oracle is labelled an estimate with ${mode} (got "${text}")`);
    check(/estimate/.test(await page.textContent("#p-0")), `${mode}: the success probability is labelled an estimate`);
  }

  // The prototype's profile, with the keyboard: End = 100%, then 10 × ArrowDown = 90%.
  for (let i = 0; i < 3; i++) {
    await page.selectOption(`#mode-${i}`, "percentage_fail");
    await page.fill(`#delay-${i}`, "0");
    await page.focus(`#fail-${i}`);
    await page.keyboard.press("End");
  }
  for (let k = 0; k < 10; k++) await page.keyboard.press("ArrowDown");
  const shown = await Promise.all([0, 1, 2].map((i) => page.textContent(`#fail-out-${i}`)));
  check(shown.join(" ") === "100% 100% 90%", `sliders show the prototype's profile (got ${shown})`);
  await page.selectOption("#max-attempts", "1");
  const oracle = await page.textContent("#oracle-text");
  check(oracle.includes("10.0%") && !oracle.includes("estimate"), `oracle for the prototype with one attempt is exactly 10% (got "${oracle}")`);

  await chooseAlgos(["round_robin", "thompson"]);
  await page.fill("#requests", String(requests));
  await page.check("#shape-concurrency");
  // 2 strategies × 4 in flight is more than the browser's 6 connections: the page warns.
  await page.fill("#concurrency", "4");
  check(await page.getAttribute("#inflight-note", "class") === "warn-text", "a warning above 6 requests in flight");
  await page.fill("#concurrency", "3");
  check(await page.getAttribute("#inflight-note", "class") === "hint", "no warning at 2 × 3 in flight");
  check(/apply to every strategy at once/.test(await page.textContent("#interleaving-note")), "the page says changes apply to every strategy at once");
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
    route: l.route,
    requests: l.samples.length,
    attempts: l.samples.reduce((t, s) => t + s.attempts, 0),
    summary: l.summary,
  })));
  for (const f of figures) {
    check(f.requests === requests, `${f.label} sent ${requests} requests (got ${f.requests})`);
    check(f.attempts === requests, `${f.label}: single attempts only (got ${f.attempts} attempts)`);
    check(f.summary.traffic_share_source === "downstream_counters", `${f.label}: traffic share from the downstreams' per-tag counters`);
    const counted = f.summary.traffic_share.length === 3;
    check(counted, `${f.label}: a share per downstream`);
  }
  const peak = await page.evaluate(() => window.magnetar.run.peakInFlight);
  check(peak <= 6, `at most 6 requests in flight (peak ${peak})`);
  checkInterleaved(await samplesOf());
  // Round robin sends a third of the requests to downstream-3, which succeeds 10% of the time:
  // Binomial(n/3, 0.1) successes, mean n/30, so with n = 1,500 the rate is 3.33% ± 0.45 (sd);
  // the band ±1.5 points is 3.3 sd.
  check(Math.abs(rr - 1 / 30) <= 0.015, `round robin ${(rr * 100).toFixed(2)}% within 3.33% ± 1.5`);
  // Thompson sampling moves most traffic to downstream-3 (oracle 10%); "clearly higher": at
  // least 6% and 2.5 points above round robin.
  check(ts >= 0.06 && ts >= rr + 0.025, `thompson ${(ts * 100).toFixed(2)}% clearly above round robin ${(rr * 100).toFixed(2)}%`);

  const definition = await page.textContent("#success-definition");
  check(/below 500/.test(definition), `the page shows the router's success definition (got "${definition}")`);
  const charts = await page.evaluate(() => {
    const c = window.magnetar.charts;
    return {
      success: c.success.data.datasets.map((d) => d.data.length),
      regret: c.regret.data.datasets.map((d) => d.data.length),
      regretLast: c.regret.data.datasets.map((d) => d.data[d.data.length - 1]?.y),
      latency: c.latency.data.datasets.map((d) => d.data),
      share: c.share.data.datasets.length,
    };
  });
  check(charts.success.length === 2 && charts.success.every((n) => n === requests), `the success chart draws both strategies (${charts.success})`);
  check(charts.regret.length === 2 && charts.regret.every((n) => n === requests), `the regret chart draws both strategies (${charts.regret})`);
  check(charts.regretLast.every((v) => Number.isFinite(v)), `regret values are numbers (${charts.regretLast})`);
  check(charts.latency.length === 2 && charts.latency.every((d) => d.length === 2 && d.every((v) => v > 0)), `p50 and p99 per strategy (${JSON.stringify(charts.latency)})`);
  check(charts.share === 3, `the share chart has one series per downstream (got ${charts.share})`);

  // The posteriors panel shows the learner's posteriors for Thompson's route.
  const tsRoute = figures.find((f) => f.label === "thompson").route;
  await page.selectOption("#posterior-lane", tsRoute);
  await page.waitForSelector(`#posterior-table tbody[data-route="${tsRoute}"] tr`, { timeout: 10000 });
  const shownPosteriors = await page.$$eval("#posterior-table tbody tr", (trs) => trs.map((tr) => ({
    name: tr.dataset.downstream, successes: Number(tr.dataset.successes), failures: Number(tr.dataset.failures),
  })));
  const learner = await (await fetch(new URL(`api/params?route=${encodeURIComponent(tsRoute)}`, cfg.url))).json();
  const total = (rows) => rows.reduce((t, r) => t + r.successes + r.failures, 0);
  const fromLearner = Object.entries(learner.downstreams || {}).map(([name, d]) => ({ name, ...d }));
  check(shownPosteriors.length === 3, `three posterior rows (${shownPosteriors.length})`);
  check(total(shownPosteriors) > 100, `the posteriors hold Thompson's observations (total ${total(shownPosteriors)})`);
  // The learner decays its counts with time; the page read them up to 2 s before this test did.
  const [a, b] = [total(shownPosteriors), total(fromLearner)];
  check(Math.abs(a - b) <= 0.1 * b + 2, `the page shows the learner's posteriors (page ${a.toFixed(1)}, learner ${b.toFixed(1)})`);
  const ds3 = shownPosteriors.find((r) => r.name === "downstream-3");
  const ds3Learner = fromLearner.find((r) => r.name === "downstream-3");
  check(ds3 && ds3Learner && Math.abs(ds3.successes - ds3Learner.successes) <= 0.1 * ds3Learner.successes + 1, "downstream-3's successes match the learner's");

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-json")]);
  const exported = join(cfg.artifacts, "test-bed-export.json");
  await download.saveAs(exported);
  const [csv] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
  await csv.saveAs(join(cfg.artifacts, "test-bed-export.csv"));

  await page.waitForTimeout(2500); // one posterior refresh
  await page.screenshot({ path: join(cfg.artifacts, "test-bed.png"), fullPage: true });
  const summaries = figures.map((f) => f.summary);

  // A change of the controls applies to the next requests of every strategy.
  await setAll("All_Success", 0);
  await page.fill("#requests", "100000");
  await page.check("#shape-rate");
  await page.fill("#rate", "8");
  await page.click("#start");
  await page.waitForFunction(() => window.magnetar.run.running && window.magnetar.run.lanes.every((l) => l.samples.length >= 10), null, { timeout: 60000 });
  const before = await page.evaluate(() => window.magnetar.run.dispatched);
  await setAll("All_fail");
  const afterFail = await page.evaluate(() => ({ dispatched: window.magnetar.run.dispatched, version: window.magnetar.version }));
  await waitForIndex(afterFail.dispatched + 8);
  const delayFrom = await page.evaluate(() => window.magnetar.run.dispatched);
  await setAll("All_Success", 300);
  const afterDelay = await page.evaluate(() => ({ dispatched: window.magnetar.run.dispatched, version: window.magnetar.version }));
  await waitForIndex(afterDelay.dispatched + 8);
  const achieved = Number(await page.getAttribute("#achieved", "data-rps"));
  await page.click("#stop");
  await page.waitForSelector("#run-status[data-state=stopped]", { timeout: 30000 });
  const configs = await page.evaluate(() => window.magnetar.run.configs);
  const failFrom = configs.find((c) => c.version === afterFail.version)?.from;
  const slowFrom = configs.find((c) => c.version === afterDelay.version)?.from;
  check(failFrom !== undefined && before <= failFrom && failFrom <= afterFail.dispatched,
    `All_fail applies from the next request (${before} ≤ ${failFrom} ≤ ${afterFail.dispatched})`);
  check(slowFrom !== undefined && delayFrom <= slowFrom && slowFrom <= afterDelay.dispatched,
    `the delay applies from the next request (${delayFrom} ≤ ${slowFrom} ≤ ${afterDelay.dispatched})`);
  const lanes = await samplesOf();
  checkInterleaved(lanes);
  for (const lane of lanes) {
    for (const x of lane.samples) {
      if (x.index < before) check(x.success, `${lane.label} request ${x.index} succeeded before the change`);
      if (x.index >= failFrom && x.index < delayFrom) check(!x.success, `${lane.label} request ${x.index} failed after All_fail`);
      if (x.index >= slowFrom) {
        check(x.success, `${lane.label} request ${x.index} succeeded after All_Success`);
        check(x.latency_ms >= 300, `${lane.label} request ${x.index} took the 300 ms delay (${x.latency_ms.toFixed(0)} ms)`);
      }
    }
  }
  check(achieved > 4 && achieved < 9, `the achieved rate per strategy is shown (${achieved} for 8 asked)`);
  check(consoleErrors.length === 0, `no script errors (got ${consoleErrors.slice(0, 5).join(" | ")})`);
  console.log(JSON.stringify({ round_robin: rr, thompson: ts, achieved_rps: achieved, fail_from: failFrom, lanes: summaries }));
}

async function outage() {
  await ready();
  await page.waitForSelector("#learner-pill.up", { timeout: 30000 });
  // A downstream that does not answer: its controls fall back to All_Success, visibly.
  await page.waitForSelector("#fleet-note:not([hidden])", { timeout: 20000 });
  const note = await page.textContent("#fleet-note");
  check(note.includes(cfg.unreachable) && /All_Success/.test(note), `a note names ${cfg.unreachable} and the fallback (got "${note}")`);
  const i = Number(cfg.unreachable.split("-").pop()) - 1;
  check(await page.inputValue(`#mode-${i}`) === "All_Success", "its controls start at All_Success");
  check(/not reported/.test(await page.textContent(`#source-${i}`)), "its row says its configuration was not reported");

  await chooseAlgos(["round_robin"]);
  await page.fill("#requests", "100000");
  await page.check("#shape-rate");
  await page.fill("#rate", "10");
  await page.click("#start");
  await page.waitForFunction(() => window.magnetar.run && window.magnetar.run.lanes[0]?.samples.length >= 20, null, { timeout: 60000 });
  await page.waitForSelector("#posterior-table tbody tr", { timeout: 20000 });
  console.log("READY_FOR_OUTAGE");

  await waitForLine("learner-stopped");
  await page.waitForSelector("#alert-learner:not([hidden])", { timeout: 20000 });
  const learnerMessage = await page.textContent("#alert-learner");
  check(/learner .* not answering/i.test(learnerMessage), `a visible learner message (got "${learnerMessage}")`);
  check(/not answering/.test(await page.textContent("#learner-pill")), "the learner pill says so");
  check(await page.isVisible("#posteriors-stale"), "the posteriors are marked stale, not left frozen");
  check(/not answering/.test(await page.textContent("#posteriors-stale")), "the posteriors' banner says why");
  // The router is up: the run and its charts go on.
  const moving = async () => page.evaluate(() => ({
    samples: window.magnetar.run.lanes[0].samples.length,
    points: window.magnetar.charts.success.data.datasets[0].data.length,
    running: window.magnetar.run.running,
  }));
  const m0 = await moving();
  await page.waitForTimeout(2000);
  const m1 = await moving();
  check(m1.running && m1.samples > m0.samples && m1.points > m0.points, `the run and its chart go on (${JSON.stringify([m0, m1])})`);
  check(await page.isHidden("#alert-router"), "no router message while the router answers");
  await page.screenshot({ path: join(cfg.artifacts, "test-bed-learner-stopped.png"), fullPage: true });
  console.log("LEARNER_MESSAGE_OK");

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

  // A page opened while the router is down says so.
  await page.goto(cfg.url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
  await page.waitForSelector("#alert-router:not([hidden])", { timeout: 20000 });
  const atLoad = await page.textContent("#alert-router");
  check(/router .* not answering/i.test(atLoad), `a visible router message on a fresh page (got "${atLoad}")`);
  check(await page.isVisible("#fleet-waiting"), "the fleet section says it waits for the router");
  check(await page.isDisabled("#start"), "no run can start without the router");
  check(/not answering/.test(await page.textContent("#router-pill")), "the router pill says so");
  await page.screenshot({ path: join(cfg.artifacts, "test-bed-router-down-at-load.png"), fullPage: true });
  check(consoleErrors.length === 0, `no script errors (got ${consoleErrors.slice(0, 5).join(" | ")})`);
  console.log("LOAD_MESSAGE_OK");
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
