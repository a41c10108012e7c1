// The test-bed page: fleet controls, a stress comparison of strategies through the router, live
// charts (Chart.js), the learner's posteriors, export. Figures come from metrics.js, which uses the
// lab's and magnetar-core's definitions.
import {
  ROLLING_WINDOW,
  betaSummary,
  cumulativeRegret,
  flakyHeader,
  oracleSuccess,
  rollingSuccess,
  successProbability,
  summarize,
} from "./metrics.js";

const MODES = ["All_Success", "All_fail", "percentage_fail", "rate_limited", "cyclic_outage"];
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const HEALTH_EVERY_MS = 2000;
const POSTERIORS_EVERY_MS = 2000;
const DRAW_EVERY_MS = 300;
const COUNTS_EVERY_MS = 1000;
const FETCH_TIMEOUT_MS = 30000;
const MAX_POINTS = 1500;

const $ = (id) => document.getElementById(id);
const state = {
  config: null,
  fleet: null,
  scenarios: [],
  behaviours: [],
  scenario: null,
  run: null,
  routerUp: null,
  learnerUp: null,
  lastPosteriors: null,
  charts: {},
};
// Let tests and curious people look.
window.magnetar = state;

// ---------------------------------------------------------------- alerts and status

function showAlert(which, text, kind) {
  const el = $(`alert-${which}`);
  if (!text) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = text;
  el.className = `alert${kind ? " " + kind : ""}`;
  el.hidden = false;
}

function setPill(which, up, text) {
  const el = $(`${which}-pill`);
  el.className = `pill ${up === null ? "unknown" : up ? "up" : "down"}`;
  el.textContent = text;
}

function setStatus(text) {
  $("run-status").textContent = text;
}

function setStale(text) {
  const el = $("stale");
  el.hidden = !text;
  el.textContent = text || "";
}

function timeOfDay(ms) {
  return new Date(ms).toLocaleTimeString();
}

async function fetchJson(url, options = {}, timeoutMs = 3000) {
  const response = await fetch(url, { cache: "no-store", signal: AbortSignal.timeout(timeoutMs), ...options });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

// ---------------------------------------------------------------- fleet and controls

function defaultBehaviour() {
  return { mode: "All_Success", percentage_fail: 0, delay_ms: 0 };
}

function names() {
  return state.fleet ? state.fleet.downstreams.map((d) => d.name) : [];
}

function buildFleetTable() {
  const body = $("fleet-table").querySelector("tbody");
  body.replaceChildren();
  names().forEach((name, i) => {
    const b = state.behaviours[i];
    const tr = document.createElement("tr");
    tr.dataset.downstream = name;
    const modeOptions = MODES.map((m) => `<option value="${m}"${m === b.mode ? " selected" : ""}>${m}</option>`).join("");
    tr.innerHTML = `
      <th scope="row">${name}</th>
      <td><select id="mode-${i}" aria-label="${name} mode">${modeOptions}</select></td>
      <td><input id="fail-${i}" type="range" min="0" max="100" step="1" value="${b.percentage_fail}" aria-label="${name} failure percentage">
          <output id="fail-out-${i}" for="fail-${i}">${b.percentage_fail}%</output></td>
      <td><input id="delay-${i}" type="number" min="0" max="60000" step="10" value="${b.delay_ms}" aria-label="${name} delay in milliseconds"></td>
      <td class="num" id="p-${i}"></td>`;
    body.append(tr);
    const onChange = () => {
      readControl(i);
      if (state.scenario) {
        state.scenario = null;
        $("scenario").value = "";
        $("scenario-note").textContent = "manual: the controls apply to the next requests";
      }
      refreshDerived();
    };
    $(`mode-${i}`).addEventListener("change", onChange);
    $(`fail-${i}`).addEventListener("input", onChange);
    $(`delay-${i}`).addEventListener("input", onChange);
  });
  refreshDerived();
}

function readControl(i) {
  const mode = $(`mode-${i}`).value;
  const pct = Number($(`fail-${i}`).value);
  const delay = Math.max(0, Math.min(60000, Math.round(Number($(`delay-${i}`).value) || 0)));
  state.behaviours[i] = { mode, percentage_fail: pct, delay_ms: delay };
}

function writeControls() {
  state.behaviours.forEach((b, i) => {
    $(`mode-${i}`).value = b.mode;
    $(`fail-${i}`).value = b.percentage_fail;
    $(`delay-${i}`).value = b.delay_ms;
  });
  refreshDerived();
}

function maxAttempts() {
  return Number($("max-attempts").value);
}

function refreshDerived() {
  state.behaviours.forEach((b, i) => {
    const p = successProbability(b);
    $(`fail-out-${i}`).textContent = `${b.percentage_fail}%`;
    $(`fail-${i}`).setAttribute("aria-valuetext", `${b.percentage_fail} percent`);
    $(`fail-${i}`).disabled = b.mode !== "percentage_fail";
    $(`p-${i}`).textContent = `${(p * 100).toFixed(1)}%`;
  });
  const k = maxAttempts();
  const oracle = oracleSuccess(state.behaviours, k);
  $("oracle-text").textContent =
    `with ${k} attempt${k === 1 ? "" : "s"} on distinct downstreams, the best possible success rate is ${(oracle * 100).toFixed(1)}%`;
}

function applyScenarioPhase(scenario, phase) {
  state.behaviours = scenario.phases[phase].downstreams.map((b) => ({ ...b }));
  writeControls();
}

function phaseIndex(scenario, index, total) {
  const at = index / Math.max(1, total);
  let phase = 0;
  scenario.phases.forEach((p, i) => {
    if (p.from <= at) phase = i;
  });
  return phase;
}

function buildScenarioSelect() {
  const select = $("scenario");
  for (const s of state.scenarios) {
    const option = document.createElement("option");
    option.value = s.name;
    const size = s.phases[0].downstreams.length;
    option.textContent = `${s.name}${size !== names().length ? ` (needs ${size} downstreams)` : ""}`;
    option.disabled = size !== names().length;
    select.append(option);
  }
  select.addEventListener("change", () => {
    const s = state.scenarios.find((x) => x.name === select.value) || null;
    state.scenario = s;
    if (s) {
      applyScenarioPhase(s, 0);
      $("scenario-note").textContent = s.phases.length > 1
        ? `${s.description}; phases switch at the same request number for every strategy`
        : s.description;
    } else {
      $("scenario-note").textContent = "manual: the controls apply to the next requests";
    }
  });
}

function buildAlgoChoices() {
  const box = $("algos");
  box.replaceChildren();
  for (const algo of state.fleet.algos) {
    const id = `algo-${algo.name}`;
    const label = document.createElement("label");
    label.title = algo.description || "";
    label.innerHTML = `<input type="checkbox" id="${id}" value="${algo.name}"> ${algo.name}`;
    box.append(label);
  }
  for (const name of ["round_robin", "thompson"]) {
    const el = $(`algo-${name}`);
    if (el) el.checked = true;
  }
  $("algos-all").onclick = () => box.querySelectorAll("input").forEach((el) => (el.checked = true));
  $("algos-none").onclick = () => box.querySelectorAll("input").forEach((el) => (el.checked = false));
}

async function loadFleet() {
  try {
    state.fleet = await fetchJson(`${state.config.router}/_magnetar/fleet`);
  } catch (e) {
    return false;
  }
  state.behaviours = names().map(() => defaultBehaviour());
  $("success-definition").textContent = state.fleet.success_definition || "(the router did not say)";
  const budget = state.fleet.max_attempts || 3;
  for (const option of $("max-attempts").options) option.disabled = Number(option.value) > budget;
  buildFleetTable();
  buildAlgoChoices();
  buildScenarioSelect();
  return true;
}

// ---------------------------------------------------------------- health and posteriors

async function checkHealth() {
  const router = state.config.router;
  let routerUp = false;
  try {
    await fetchJson(`${router}/_magnetar/health`, {}, 2000);
    routerUp = true;
  } catch (e) {
    routerUp = false;
  }
  if (routerUp !== state.routerUp) {
    state.routerUp = routerUp;
    setPill("router", routerUp, `router: ${routerUp ? "up" : "not answering"}`);
    if (routerUp) {
      showAlert("router", "");
      if (!state.run || !state.run.running) setStale("");
    } else {
      showAlert("router", `The router at ${router} is not answering. Requests cannot be sent; ` +
        `start the stack (scripts/stack.sh) and the page picks it up again.`);
      if (state.run && state.run.running) stopRun("the router stopped answering");
      setStale(`Router not answering since ${timeOfDay(Date.now())}: no new data.`);
    }
  }
  if (routerUp && !state.fleet) await loadFleet();
  const learner = state.config.learner;
  let learnerUp = false;
  try {
    await fetchJson(`${learner}/healthz`, {}, 2000);
    learnerUp = true;
  } catch (e) {
    learnerUp = false;
  }
  if (learnerUp !== state.learnerUp) {
    state.learnerUp = learnerUp;
    setPill("learner", learnerUp, `learner: ${learnerUp ? "up" : "not answering"}`);
    if (learnerUp) {
      showAlert("learner", "");
    } else {
      const since = state.lastPosteriors ? `the posteriors shown are from ${timeOfDay(state.lastPosteriors.at)}` : "no posteriors to show";
      showAlert("learner", `The learner at ${learner} is not answering: ${since}. ` +
        `Strategy "learner" falls back to local Thompson sampling in the router.`, "warn");
    }
  }
}

function currentRoute() {
  const run = state.run;
  if (run && run.lanes.length) return run.lanes[run.lanes.length - 1].route;
  return "/service";
}

async function refreshPosteriors() {
  if (!state.fleet) return;
  const route = currentRoute();
  $("posterior-route").textContent = route;
  let params;
  try {
    params = await fetchJson(`${state.config.learner}/params?route=${encodeURIComponent(route)}`, {}, 2000);
  } catch (e) {
    if (state.lastPosteriors) $("posterior-age").textContent = `last read ${timeOfDay(state.lastPosteriors.at)} (learner not answering)`;
    return;
  }
  state.lastPosteriors = { at: Date.now(), route, params };
  $("posterior-age").textContent = `read ${timeOfDay(Date.now())}, version ${params.version ?? "?"}`;
  const rows = names().map((name) => {
    const d = (params.downstreams || {})[name] || { successes: 0, failures: 0 };
    return { name, successes: d.successes, failures: d.failures, ...betaSummary(d.successes, d.failures) };
  });
  const body = $("posterior-table").querySelector("tbody");
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<th scope="row">${r.name}</th><td class="num">${r.successes.toFixed(1)}</td>` +
      `<td class="num">${r.failures.toFixed(1)}</td><td class="num">${(r.mean * 100).toFixed(1)}%</td>`;
    return tr;
  }));
  const chart = state.charts.posteriors;
  chart.data.labels = rows.map((r) => r.name);
  chart.data.datasets[0].data = rows.map((r) => [r.low * 100, r.high * 100]);
  chart.data.datasets[1].data = rows.map((r) => r.mean * 100);
  chart.update("none");
}

// ---------------------------------------------------------------- charts

function makeCharts() {
  const common = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
  };
  state.charts.success = new Chart($("chart-success"), {
    type: "line",
    data: { datasets: [] },
    options: {
      ...common,
      parsing: false,
      plugins: { ...common.plugins, title: { display: true, text: `Success rate over the last ${ROLLING_WINDOW} requests (%)` } },
      scales: { x: { type: "linear", title: { display: true, text: "request number" } }, y: { min: 0, max: 100 } },
      elements: { point: { radius: 0 } },
    },
  });
  state.charts.regret = new Chart($("chart-regret"), {
    type: "line",
    data: { datasets: [] },
    options: {
      ...common,
      parsing: false,
      plugins: { ...common.plugins, title: { display: true, text: "Cumulative realized regret (requests)" } },
      scales: { x: { type: "linear", title: { display: true, text: "request number" } } },
      elements: { point: { radius: 0 } },
    },
  });
  state.charts.share = new Chart($("chart-share"), {
    type: "bar",
    data: { labels: [], datasets: [] },
    options: {
      ...common,
      plugins: { ...common.plugins, title: { display: true, text: "Traffic share per downstream (% of attempts)" } },
      scales: { x: { stacked: true }, y: { stacked: true, min: 0, max: 100 } },
    },
  });
  state.charts.latency = new Chart($("chart-latency"), {
    type: "bar",
    data: { labels: [], datasets: [
      { label: "p50 ms", data: [], backgroundColor: "#1f77b4" },
      { label: "p99 ms", data: [], backgroundColor: "#ff7f0e" },
    ] },
    options: { ...common, plugins: { ...common.plugins, title: { display: true, text: "Latency (ms)" } } },
  });
  state.charts.posteriors = new Chart($("chart-posteriors"), {
    type: "bar",
    data: { labels: [], datasets: [
      { label: "≈95% interval (%)", data: [], backgroundColor: "rgba(31,119,180,0.35)" },
      { label: "mean (%)", data: [], type: "line", showLine: false, pointRadius: 6, backgroundColor: "#d62728", borderColor: "#d62728" },
    ] },
    options: { ...common, scales: { y: { min: 0, max: 100 } } },
  });
}

function thin(points) {
  if (points.length <= MAX_POINTS) return points;
  const step = Math.ceil(points.length / MAX_POINTS);
  return points.filter((_, i) => i % step === 0 || i === points.length - 1);
}

function drawCharts() {
  const run = state.run;
  if (!run) return;
  const lanes = run.lanes;
  lanes.forEach((lane, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const success = thin(rollingSuccess(lane.samples).map((v, k) => ({ x: k, y: v * 100 })));
    const regret = thin(cumulativeRegret(lane.samples).map((v, k) => ({ x: k, y: v })));
    const set = (chart, data) => {
      if (!chart.data.datasets[i]) chart.data.datasets[i] = { label: lane.label, data: [], borderColor: colour, backgroundColor: colour, borderWidth: 1.5 };
      chart.data.datasets[i].data = data;
    };
    set(state.charts.success, success);
    set(state.charts.regret, regret);
  });
  state.charts.success.update("none");
  state.charts.regret.update("none");

  const summaries = lanes.map((lane) => laneSummary(lane));
  const share = state.charts.share;
  share.data.labels = lanes.map((l) => l.label);
  share.data.datasets = names().map((name, d) => ({
    label: name,
    data: summaries.map((s) => (s.traffic_share[d] || 0) * 100),
    backgroundColor: PALETTE[d % PALETTE.length],
  }));
  share.update("none");
  const latency = state.charts.latency;
  latency.data.labels = lanes.map((l) => l.label);
  latency.data.datasets[0].data = summaries.map((s) => s.latency_p50_ms);
  latency.data.datasets[1].data = summaries.map((s) => s.latency_p99_ms);
  latency.update("none");
  renderSummary(summaries);
}

function laneSummary(lane) {
  if (lane.summary) return lane.summary;
  return summarize(lane.samples, names(), lane.liveCounts);
}

function pct(x) {
  return `${(x * 100).toFixed(1)}%`;
}

function renderSummary(summaries) {
  const run = state.run;
  const body = $("summary-table").querySelector("tbody");
  body.replaceChildren(...run.lanes.map((lane, i) => {
    const s = summaries[i];
    const tr = document.createElement("tr");
    tr.dataset.algo = lane.label;
    tr.dataset.done = lane.summary ? "true" : "false";
    tr.dataset.successRate = String(s.success_rate);
    tr.innerHTML = `<th scope="row">${lane.label}${lane.stopped ? " (stopped)" : ""}</th>` +
      `<td class="num">${s.requests}</td><td class="num">${pct(s.success_rate)}</td>` +
      `<td class="num">${pct(s.first_attempt_success_rate)}</td><td class="num">${s.attempts_per_request.toFixed(2)}</td>` +
      `<td class="num">${s.best_guess_score}</td><td class="num">${s.latency_p50_ms.toFixed(0)}</td>` +
      `<td class="num">${s.latency_p99_ms.toFixed(0)}</td><td class="num">${s.realized_regret.toFixed(1)}</td>` +
      `<td>${s.traffic_share.map((v) => (v * 100).toFixed(0)).join("/")}</td>`;
    return tr;
  }));
}

// ---------------------------------------------------------------- the run

function readSettings() {
  const algos = [...$("algos").querySelectorAll("input:checked")].map((el) => el.value);
  const requests = Math.round(Number($("requests").value));
  const rateMode = $("shape-rate").checked;
  const concurrency = Math.round(Number($("concurrency").value));
  const rate = Number($("rate").value);
  if (algos.length === 0) throw new Error("choose at least one strategy");
  if (!(requests >= 1)) throw new Error("requests must be at least 1");
  if (!rateMode && !(concurrency >= 1 && concurrency <= 6)) throw new Error("in flight must be from 1 to 6");
  if (rateMode && !(rate > 0)) throw new Error("the rate must be positive");
  return {
    algos,
    requests,
    shape: rateMode ? { rate } : { concurrency },
    max_attempts: maxAttempts(),
    scenario: state.scenario ? state.scenario.name : null,
  };
}

async function lab(path, method = "GET") {
  return fetchJson(path, { method }, 5000);
}

async function readCounts() {
  try {
    const body = await lab("/api/downstreams");
    return body.downstreams;
  } catch (e) {
    return null;
  }
}

function behavioursFor(index, total) {
  const s = state.scenario;
  if (!s || s.phases.length === 1) return state.behaviours;
  const phase = phaseIndex(s, index, total);
  if (phase !== state.run.phase) {
    state.run.phase = phase;
    applyScenarioPhase(s, phase);
  }
  return state.behaviours;
}

async function sendOne(lane, index, total, laneStart) {
  const run = state.run;
  const behaviours = behavioursFor(index, total);
  const header = flakyHeader(names(), behaviours);
  const oracle = oracleSuccess(behaviours, run.settings.max_attempts);
  const started = performance.now();
  const sample = { index, sent_ms: started - laneStart, latency_ms: 0, status: 0, success: false, attempts: 0, worker: "", oracle };
  try {
    const response = await fetch(lane.url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-flaky-config": header },
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
    if (!run.stopRequested) {
      showAlert("router", `The router at ${state.config.router} is not answering (request ${index} of ${lane.label}: ${sample.error}). ` +
        `The run stopped; the charts and the table keep what was measured until then.`);
      setPill("router", false, "router: not answering");
      state.routerUp = false;
      setStale(`Router not answering since ${timeOfDay(Date.now())}: the run stopped, no new data.`);
      stopRun("the router stopped answering");
    }
    lane.stopped = true;
  }
  lane.samples.push(sample);
}

async function driveLane(lane, settings) {
  const total = settings.requests;
  const laneStart = performance.now();
  const run = state.run;
  if ("concurrency" in settings.shape) {
    let next = 0;
    const worker = async () => {
      while (!run.stopRequested && next < total) {
        const i = next++;
        await sendOne(lane, i, total, laneStart);
      }
    };
    await Promise.all(Array.from({ length: settings.shape.concurrency }, worker));
  } else {
    const interval = 1000 / settings.shape.rate;
    const inFlight = [];
    for (let i = 0; i < total && !run.stopRequested; i++) {
      const due = laneStart + i * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (run.stopRequested) break;
      inFlight.push(sendOne(lane, i, total, laneStart));
    }
    await Promise.all(inFlight);
  }
}

function stopRun(reason) {
  const run = state.run;
  if (!run || run.stopRequested) return;
  run.stopRequested = true;
  run.stopReason = reason;
  setStatus(`stopping: ${reason}`);
}

async function startRun(event) {
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
  for (const chart of [state.charts.success, state.charts.regret]) chart.data.datasets = [];
  const id = Date.now().toString(16);
  const run = { id, settings, lanes: [], running: true, stopRequested: false, phase: 0, startedAt: Date.now() };
  state.run = run;
  if (state.scenario) applyScenarioPhase(state.scenario, 0);
  $("start").disabled = true;
  $("stop").disabled = false;
  $("export-json").disabled = true;
  $("export-csv").disabled = true;
  const draw = setInterval(drawCharts, DRAW_EVERY_MS);
  try {
    for (const algo of settings.algos) {
      if (run.stopRequested) break;
      const route = `/service/lab-${id}-${algo}`;
      const url = `${state.config.router}${route}?algo=${encodeURIComponent(algo)}&max_attempts=${settings.max_attempts}`;
      const lane = { label: algo, route, url, samples: [], liveCounts: null, summary: null, counts: null };
      run.lanes.push(lane);
      setStatus(`running ${algo} (${run.lanes.length}/${settings.algos.length})`);
      let counting = false;
      try {
        await lab("/api/downstreams/reset", "POST");
        counting = true;
      } catch (e) {
        counting = false;
      }
      const poll = counting ? setInterval(async () => {
        const counts = await readCounts();
        if (counts) lane.liveCounts = counts;
      }, COUNTS_EVERY_MS) : null;
      if (state.scenario) {
        run.phase = 0;
        applyScenarioPhase(state.scenario, 0);
      }
      await driveLane(lane, settings);
      if (poll) clearInterval(poll);
      lane.counts = counting ? await readCounts() : null;
      const invalid = (lane.counts || []).reduce((t, c) => t + (c.invalid || 0), 0);
      if (invalid > 0) {
        showAlert("run", `The downstreams rejected ${invalid} x-flaky-config overrides during ${algo}: its figures are not valid.`);
      }
      lane.summary = summarize(lane.samples, names(), lane.counts);
      drawCharts();
    }
  } finally {
    clearInterval(draw);
    run.running = false;
    drawCharts();
    $("start").disabled = false;
    $("stop").disabled = true;
    $("export-json").disabled = run.lanes.length === 0;
    $("export-csv").disabled = run.lanes.length === 0;
    const done = run.lanes.filter((l) => l.summary).length;
    setStatus(run.stopRequested ? `stopped (${run.stopReason}) after ${done} strategies` : `done: ${done} strategies`);
    $("run-status").dataset.state = run.stopRequested ? "stopped" : "done";
  }
}

// ---------------------------------------------------------------- export

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function exportJson() {
  const run = state.run;
  const report = {
    schema: 1,
    tool: "magnetar test-bed page",
    started_at_unix_ms: run.startedAt,
    router: state.config.router,
    learner: state.config.learner,
    settings: run.settings,
    fleet: names(),
    success_definition: state.fleet.success_definition,
    lanes: run.lanes.map((l) => ({ label: l.label, kind: "magnetar", route: l.route, summary: laneSummary(l), downstream_counts: l.counts, samples: l.samples })),
  };
  download(`magnetar-test-bed-${run.id}.json`, "application/json", JSON.stringify(report, null, 2));
}

function exportCsv() {
  const run = state.run;
  const head = ["lane", "kind", "requests", "successes", "success_rate", "first_attempt_success_rate", "attempts", "attempts_per_request", "best_guess_score", "latency_p50_ms", "latency_p99_ms", "realized_regret", "errors", ...names().map((n) => `share_${n}`)];
  const rows = run.lanes.map((l) => {
    const s = laneSummary(l);
    return [l.label, "magnetar", s.requests, s.successes, s.success_rate, s.first_attempt_success_rate, s.attempts, s.attempts_per_request, s.best_guess_score, s.latency_p50_ms, s.latency_p99_ms, s.realized_regret, s.errors, ...s.traffic_share];
  });
  download(`magnetar-test-bed-${run.id}.csv`, "text/csv", [head, ...rows].map((r) => r.join(",")).join("\n") + "\n");
}

// ---------------------------------------------------------------- start

async function main() {
  state.config = await fetchJson("config.json");
  try {
    state.scenarios = (await fetchJson("scenarios.json")).scenarios;
  } catch (e) {
    state.scenarios = [];
  }
  makeCharts();
  $("run-form").addEventListener("submit", startRun);
  $("stop").addEventListener("click", () => stopRun("stopped by you"));
  $("export-json").addEventListener("click", exportJson);
  $("export-csv").addEventListener("click", exportCsv);
  $("max-attempts").addEventListener("change", refreshDerived);
  await checkHealth();
  setInterval(checkHealth, HEALTH_EVERY_MS);
  setInterval(refreshPosteriors, POSTERIORS_EVERY_MS);
  refreshPosteriors();
  document.body.dataset.ready = "true";
}

main().catch((e) => showAlert("run", `The page could not start: ${e.message}`));
