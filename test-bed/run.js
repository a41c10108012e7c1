// A stress comparison: the chosen strategies run interleaved, as the lab runs them
// (tools/lab/src/load.rs). Request i of every strategy leaves together, carrying the same fleet
// behaviour (the controls, or the scenario phase, as they stand when round i leaves), each strategy
// on a fresh route of its own. "In flight" and "rate" are per strategy. A change of the controls
// therefore applies to every strategy from the same request number.
import { $, fetchJson, names, setPill, setStale, setStatus, showAlert, state, timeOfDay } from "./dom.js";
import { clearRunCharts, drawCharts } from "./charts.js";
import { applyScenarioPhase, maxAttempts, phaseIndex } from "./fleet.js";
import { flakyHeader, oracleSuccess, summarize } from "./metrics.js";

/** Connections a browser opens to one host (HTTP/1.1): more requests in flight wait in its queue. */
export const BROWSER_CONNECTIONS = 6;
const DRAW_EVERY_MS = 300;
const COUNTS_EVERY_MS = 1000;
const FETCH_TIMEOUT_MS = 30000;

function chosenAlgos() {
  return [...$("algos").querySelectorAll("input:checked")].map((el) => el.value);
}

export function readSettings() {
  const algos = chosenAlgos();
  const requests = Math.round(Number($("requests").value));
  const rateMode = $("shape-rate").checked;
  const concurrency = Math.round(Number($("concurrency").value));
  const rate = Number($("rate").value);
  if (algos.length === 0) throw new Error("choose at least one strategy");
  if (!(requests >= 1)) throw new Error("requests must be at least 1");
  if (!rateMode && !(concurrency >= 1 && concurrency <= BROWSER_CONNECTIONS)) {
    throw new Error(`in flight per strategy must be from 1 to ${BROWSER_CONNECTIONS}`);
  }
  if (rateMode && !(rate > 0)) throw new Error("the rate must be positive");
  return {
    algos,
    requests,
    shape: rateMode ? { rate } : { concurrency },
    max_attempts: maxAttempts(),
    scenario: state.scenario ? state.scenario.name : null,
    interleaved: true,
  };
}

/** The note under the load settings: what the browser can do with the strategies chosen. */
export function updateLoadNote() {
  const lanes = Math.max(1, chosenAlgos().length);
  const el = $("inflight-note");
  if ($("shape-rate").checked) {
    const rate = Number($("rate").value) || 0;
    el.textContent = `${lanes} strateg${lanes === 1 ? "y" : "ies"} × ${rate} requests/s = ${(lanes * rate).toFixed(1)} requests/s ` +
      `to the router. The browser keeps at most ${BROWSER_CONNECTIONS} requests in flight to it; when answers take longer ` +
      `than that allows, requests wait in its queue and the achieved rate (shown while running) falls below the asked one.`;
    el.className = "hint";
    return;
  }
  const perLane = Math.round(Number($("concurrency").value)) || 0;
  const total = perLane * lanes;
  if (total > BROWSER_CONNECTIONS) {
    el.textContent = `${lanes} strategies × ${perLane} in flight = ${total} requests in flight, more than the ` +
      `${BROWSER_CONNECTIONS} connections a browser opens to the router: the extra requests wait in the browser's queue ` +
      `(their latency includes the wait). At most ${Math.max(1, Math.floor(BROWSER_CONNECTIONS / lanes))} per strategy ` +
      `avoids it; the lab (magnetar-lab run) has no such limit.`;
    el.className = "warn-text";
  } else {
    el.textContent = `${lanes} × ${perLane} = ${total} requests in flight (a browser opens at most ${BROWSER_CONNECTIONS} connections to the router).`;
    el.className = "hint";
  }
}

async function readCounts() {
  try {
    return (await fetchJson("/api/downstreams", {}, 5000)).downstreams;
  } catch (e) {
    return null;
  }
}

/** A lane's counts from the downstreams' per-tag counters, in fleet order. */
function laneCounts(all, lane) {
  if (!all) return null;
  return names().map((name) => {
    const d = all.find((x) => x.name === name);
    const t = (d && d.tags && d.tags[lane.tag]) || {};
    return { name, requests: t.requests || 0, successes: t.successes || 0, invalid: t.invalid || 0 };
  });
}

/**
 * The fleet behaviour round `index` carries: the scenario's phase for that index, else the
 * controls as they stand now. A new behaviour is recorded with the round it starts from.
 */
function snapshotFor(run, index) {
  const s = state.scenario;
  if (s && s.phases.length > 1) {
    const phase = phaseIndex(s, index, run.settings.requests);
    if (phase !== run.phase) {
      run.phase = phase;
      applyScenarioPhase(s, phase);
    }
  }
  if (!run.current || run.current.version !== state.version) {
    const behaviours = state.behaviours.map((b) => ({ ...b }));
    run.current = {
      version: state.version,
      from: index,
      behaviours,
      header: flakyHeader(names(), behaviours),
      oracle: oracleSuccess(behaviours, run.settings.max_attempts),
    };
    run.configs.push({ version: state.version, from: index, behaviours });
  }
  run.dispatched = index + 1;
  return run.current;
}

function routerLost(run, lane, index, error) {
  if (run.stopRequested) return;
  showAlert("router", `The router at ${state.config.router} is not answering (request ${index} of ${lane.label}: ${error}). ` +
    `The run stopped; the charts and the table keep what was measured until then.`);
  setPill("router", false, "router: not answering");
  state.routerUp = false;
  setStale(`Router not answering since ${timeOfDay(Date.now())}: the run stopped, no new data.`);
  stopRun("the router stopped answering");
}

async function sendOne(run, lane, index, snap, sentMs) {
  const started = performance.now();
  const sample = {
    index, sent_ms: sentMs, latency_ms: 0, status: 0, success: false, attempts: 0, worker: "",
    oracle: snap.oracle, config_version: snap.version,
  };
  run.inFlight += 1;
  run.peakInFlight = Math.max(run.peakInFlight, run.inFlight);
  try {
    const response = await fetch(lane.url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-flaky-config": snap.header, "x-flaky-tag": lane.tag },
      body: "{}",
      cache: "no-store",
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    await response.arrayBuffer();
    sample.latency_ms = performance.now() - started;
    sample.status = response.status;
    sample.success = response.headers.get("x-magnetar-outcome") === "success";
    sample.attempts = Number(response.headers.get("x-magnetar-attempts") || 0);
    sample.worker = response.headers.get("x-magnetar-worker") || "";
    if (!response.headers.get("x-magnetar-outcome")) {
      throw new Error(`answer ${response.status} without x-magnetar-outcome (not the router?)`);
    }
  } catch (e) {
    sample.latency_ms = performance.now() - started;
    sample.error = String(e && e.message ? e.message : e);
    routerLost(run, lane, index, sample.error);
    lane.stopped = true;
  } finally {
    run.inFlight -= 1;
  }
  lane.samples.push(sample);
}

/** Round `index`: request `index` of every lane, sent together; done when every lane answered. */
async function round(run, index) {
  const snap = snapshotFor(run, index);
  const sentMs = performance.now() - run.t0;
  await Promise.all(run.lanes.map((lane) => sendOne(run, lane, index, snap, sentMs)));
}

async function drive(run) {
  const { requests, shape } = run.settings;
  if ("concurrency" in shape) {
    let next = 0;
    const worker = async () => {
      while (!run.stopRequested && next < requests) {
        const i = next++;
        await round(run, i);
      }
    };
    await Promise.all(Array.from({ length: shape.concurrency }, worker));
  } else {
    const interval = 1000 / shape.rate;
    const pending = [];
    for (let i = 0; i < requests && !run.stopRequested; i++) {
      const wait = run.t0 + i * interval - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (run.stopRequested) break;
      pending.push(round(run, i));
    }
    await Promise.all(pending);
  }
}

/** Live figures of the load: rounds sent, in flight, the request rate each strategy got. */
function showProgress(run) {
  const elapsed = (performance.now() - run.t0) / 1000;
  const answered = run.lanes.length ? Math.min(...run.lanes.map((l) => l.samples.length)) : 0;
  const achieved = elapsed > 0 ? answered / elapsed : 0;
  run.achievedRps = achieved;
  const asked = "rate" in run.settings.shape ? `, asked ${run.settings.shape.rate}/s` : "";
  const el = $("achieved");
  el.textContent = `round ${run.dispatched} of ${run.settings.requests} · in flight ${run.inFlight} (peak ${run.peakInFlight}) · ` +
    `achieved ${achieved.toFixed(1)} requests/s per strategy${asked}`;
  el.dataset.rps = achieved.toFixed(3);
  if (run.peakInFlight > BROWSER_CONNECTIONS && !run.queued) {
    run.queued = true;
    showAlert("run", `More than ${BROWSER_CONNECTIONS} requests were in flight at once (peak ${run.peakInFlight}): the browser ` +
      `queues those beyond its ${BROWSER_CONNECTIONS} connections to the router, so some left later than scheduled and their ` +
      `latency includes the wait. Fewer strategies, fewer in flight or a lower rate avoid it.`, "warn");
  }
}

export function stopRun(reason) {
  const run = state.run;
  if (!run || run.stopRequested) return;
  run.stopRequested = true;
  run.stopReason = reason;
  setStatus(`stopping: ${reason}`);
}

export async function startRun(event) {
  event.preventDefault();
  let settings;
  try {
    settings = readSettings();
  } catch (e) {
    showAlert("run", e.message);
    return;
  }
  showAlert("run", "");
  setStale("");
  clearRunCharts();
  const id = Date.now().toString(16);
  const run = {
    id, settings, lanes: [], configs: [], current: null, running: true, stopRequested: false, phase: 0,
    startedAt: Date.now(), t0: performance.now(), dispatched: 0, inFlight: 0, peakInFlight: 0, queued: false,
  };
  state.run = run;
  if (state.scenario) applyScenarioPhase(state.scenario, 0);
  for (const algo of settings.algos) {
    const tag = `lab-${id}-${algo}`;
    const route = `/service/${tag}`;
    const url = `${state.config.router}${route}?algo=${encodeURIComponent(algo)}&max_attempts=${settings.max_attempts}`;
    run.lanes.push({ label: algo, route, tag, url, samples: [], liveCounts: null, summary: null, counts: null, stopped: false });
  }
  document.dispatchEvent(new CustomEvent("magnetar:run-started"));
  $("start").disabled = true;
  $("stop").disabled = false;
  $("export-json").disabled = true;
  $("export-csv").disabled = true;
  delete $("run-status").dataset.state;
  setStatus(`running ${settings.algos.length} strateg${settings.algos.length === 1 ? "y" : "ies"} interleaved`);
  let counting = (await readCounts()) !== null;
  const poll = setInterval(async () => {
    if (!counting) return;
    const all = await readCounts();
    if (all) run.lanes.forEach((lane) => (lane.liveCounts = laneCounts(all, lane)));
  }, COUNTS_EVERY_MS);
  const draw = setInterval(() => {
    showProgress(run);
    drawCharts();
  }, DRAW_EVERY_MS);
  try {
    run.t0 = performance.now();
    await drive(run);
  } finally {
    clearInterval(poll);
    clearInterval(draw);
    const all = counting ? await readCounts() : null;
    counting = all !== null;
    const invalid = [];
    for (const lane of run.lanes) {
      lane.counts = laneCounts(all, lane);
      const rejected = (lane.counts || []).reduce((t, c) => t + c.invalid, 0);
      if (rejected > 0) invalid.push(`${lane.label}: ${rejected}`);
      lane.summary = summarize(lane.samples, names(), lane.counts);
    }
    if (invalid.length) {
      showAlert("run", `The downstreams rejected x-flaky-config overrides (${invalid.join(", ")}): those figures are not valid.`);
    }
    run.running = false;
    showProgress(run);
    drawCharts();
    $("start").disabled = !state.fleet;
    $("stop").disabled = true;
    $("export-json").disabled = run.lanes.length === 0;
    $("export-csv").disabled = run.lanes.length === 0;
    const done = run.lanes.filter((l) => l.summary && !l.stopped).length;
    setStatus(run.stopRequested ? `stopped (${run.stopReason})` : `done: ${done} strategies, ${run.dispatched} requests each`);
    $("run-status").dataset.state = run.stopRequested ? "stopped" : "done";
    document.dispatchEvent(new CustomEvent("magnetar:run-finished"));
  }
}
