// Health of the router and the learner, and the learner's posteriors. Whatever stops answering is
// said in a visible message, and whatever shows its data is marked stale, never left to freeze.
import { $, fetchJson, names, setPill, setStale, showAlert, state, timeOfDay } from "./dom.js";
import { betaSummary } from "./metrics.js";
import { loadFleet } from "./fleet.js";
import { stopRun } from "./run.js";

export const HEALTH_EVERY_MS = 2000;
export const POSTERIORS_EVERY_MS = 2000;

async function answers(url) {
  try {
    await fetchJson(url, {}, 2000);
    return true;
  } catch (e) {
    return false;
  }
}

function routerChanged(up) {
  const router = state.config.router;
  state.routerUp = up;
  setPill("router", up, `router: ${up ? "up" : "not answering"}`);
  if (up) {
    showAlert("router", "");
    if (!state.run || !state.run.running) setStale("");
    return;
  }
  showAlert("router", `The router at ${router} is not answering. Requests cannot be sent; ` +
    `start the stack (scripts/stack.sh) and the page picks it up again.`);
  if (state.run && state.run.running) stopRun("the router stopped answering");
  setStale(`Router not answering since ${timeOfDay(Date.now())}: no new data.`);
  if (!state.fleet) {
    $("fleet-waiting").hidden = false;
    $("start").disabled = true;
  }
}

function learnerChanged(up) {
  const learner = state.config.learner;
  state.learnerUp = up;
  setPill("learner", up, `learner: ${up ? "up" : "not answering"}`);
  const stale = $("posteriors-stale");
  if (up) {
    state.learnerDownSince = null;
    showAlert("learner", "");
    stale.hidden = true;
    return;
  }
  state.learnerDownSince = Date.now();
  const since = state.lastPosteriors
    ? `the posteriors shown are from ${timeOfDay(state.lastPosteriors.at)}`
    : "no posteriors to show";
  showAlert("learner", `The learner at ${learner} is not answering: ${since}. ` +
    `Strategy "learner" falls back to local Thompson sampling in the router.`, "warn");
  stale.textContent = `Learner not answering since ${timeOfDay(state.learnerDownSince)}: ` +
    (state.lastPosteriors ? `these posteriors are from ${timeOfDay(state.lastPosteriors.at)} and do not move.` : "no posteriors.");
  stale.hidden = false;
}

export async function checkHealth() {
  // While a run is going its own requests tell whether the router answers (a failed one stops the
  // run with a message); a health check would take one of the browser's 6 connections to it.
  const running = state.run && state.run.running;
  if (!running) {
    const up = await answers(`${state.config.router}/_magnetar/health`);
    if (up !== state.routerUp) routerChanged(up);
    if (up && !state.fleet) await loadFleet();
  }
  const learnerUp = await answers(`${state.config.learner}/healthz`);
  if (learnerUp !== state.learnerUp) learnerChanged(learnerUp);
}

/** The lanes whose posteriors can be shown: the run's routes, else the router's default route. */
export function refreshPosteriorChoices() {
  const select = $("posterior-lane");
  const lanes = state.run ? state.run.lanes : [];
  const options = lanes.length
    ? lanes.map((l) => ({ value: l.route, text: `${l.label} (${l.route})` }))
    : [{ value: "/service", text: "/service (no run yet)" }];
  const keep = options.some((o) => o.value === select.value) ? select.value : options[options.length - 1].value;
  select.replaceChildren(...options.map((o) => {
    const option = document.createElement("option");
    option.value = o.value;
    option.textContent = o.text;
    return option;
  }));
  select.value = keep;
}

export async function refreshPosteriors() {
  if (!state.fleet) return;
  const route = $("posterior-lane").value || "/service";
  let params;
  try {
    // Through the page's server, which holds the learner's token.
    params = await fetchJson(`/api/params?route=${encodeURIComponent(route)}`, {}, 2000);
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
  body.dataset.route = route;
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.downstream = r.name;
    tr.dataset.successes = String(r.successes);
    tr.dataset.failures = String(r.failures);
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
