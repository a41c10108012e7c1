// The live charts (Chart.js, served from node_modules as /vendor/chart.umd.js) and the summary
// table. Every figure comes from metrics.js.
import { $, names, pct, state } from "./dom.js";
import { ROLLING_WINDOW, cumulativeRegret, rollingSuccess, summarize } from "./metrics.js";

export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const MAX_POINTS = 1500;

export function makeCharts() {
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

/** Empties the per-request charts for a new run. */
export function clearRunCharts() {
  for (const chart of [state.charts.success, state.charts.regret]) chart.data.datasets = [];
}

function thin(points) {
  if (points.length <= MAX_POINTS) return points;
  const step = Math.ceil(points.length / MAX_POINTS);
  return points.filter((_, i) => i % step === 0 || i === points.length - 1);
}

export function laneSummary(lane) {
  if (lane.summary) return lane.summary;
  return summarize(lane.samples, names(), lane.liveCounts);
}

export function drawCharts() {
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

  const summaries = lanes.map(laneSummary);
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
