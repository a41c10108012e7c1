// Small DOM and network helpers shared by the page's modules, and the page's state (window.magnetar,
// so that tests and curious people can look).

export const $ = (id) => document.getElementById(id);

/** What the whole page knows; modules read and write it, nothing else is global. */
export const state = {
  config: null, // /config.json: where the router and the learner are
  fleet: null, // the router's /_magnetar/fleet
  scenarios: [],
  behaviours: [], // the controls, one { mode, percentage_fail, delay_ms } per downstream
  configured: [], // what each downstream reported itself (GET /), or null
  allowOverrides: [], // whether each downstream honours x-flaky-config
  version: 0, // bumped on every change of the controls
  scenario: null,
  run: null,
  routerUp: null,
  learnerUp: null,
  learnerDownSince: null,
  lastPosteriors: null,
  charts: {},
};
window.magnetar = state;

export function showAlert(which, text, kind) {
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

export function setPill(which, up, text) {
  const el = $(`${which}-pill`);
  el.className = `pill ${up === null ? "unknown" : up ? "up" : "down"}`;
  el.textContent = text;
}

export function setStatus(text) {
  $("run-status").textContent = text;
}

/** The banner over the live charts: why no new data comes (empty text hides it). */
export function setStale(text) {
  const el = $("stale");
  el.hidden = !text;
  el.textContent = text || "";
}

export function timeOfDay(ms) {
  return new Date(ms).toLocaleTimeString();
}

export async function fetchJson(url, options = {}, timeoutMs = 3000) {
  const response = await fetch(url, { cache: "no-store", signal: AbortSignal.timeout(timeoutMs), ...options });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

export function names() {
  return state.fleet ? state.fleet.downstreams.map((d) => d.name) : [];
}

export function pct(x) {
  return `${(x * 100).toFixed(1)}%`;
}
