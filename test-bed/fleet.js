// The fleet and its controls: one row per downstream (mode, failure percentage, delay), starting
// from what each downstream reports about itself (its own GET /, read through the lab server), the
// scenario presets, the strategy choices, and the oracle's "best possible" figure.
import { $, fetchJson, names, showAlert, state } from "./dom.js";
import { isEstimate, oracleSuccess, successProbability } from "./metrics.js";

export const MODES = ["All_Success", "All_fail", "percentage_fail", "rate_limited", "cyclic_outage"];

/** What a downstream's controls start from when it does not say how it is configured. */
export function defaultBehaviour() {
  return { mode: "All_Success", percentage_fail: 0, delay_ms: 0 };
}

/** The controls' fields of a downstream's own configuration (its GET / body), or null. */
export function behaviourOf(config) {
  if (!config || !MODES.includes(config.mode)) return null;
  return {
    mode: config.mode,
    percentage_fail: Number(config.percentage_fail) || 0,
    delay_ms: Number(config.delay_ms) || 0,
  };
}

function markChanged() {
  state.version += 1;
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
      <th scope="row">${name}<br><span id="source-${i}" class="hint"></span></th>
      <td><select id="mode-${i}" aria-label="${name} mode">${modeOptions}</select></td>
      <td><input id="fail-${i}" type="range" min="0" max="100" step="1" value="${b.percentage_fail}" aria-label="${name} failure percentage">
          <output id="fail-out-${i}" for="fail-${i}">${b.percentage_fail}%</output></td>
      <td><input id="delay-${i}" type="number" min="0" max="60000" step="10" value="${b.delay_ms}" aria-label="${name} delay in milliseconds"></td>
      <td class="num" id="p-${i}"></td>`;
    body.append(tr);
    const onChange = () => {
      readControl(i);
      if (state.scenario) toManual();
      markChanged();
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

export function maxAttempts() {
  return Number($("max-attempts").value);
}

/** Success probability per row and the oracle's figure, marked as estimates where they are. */
export function refreshDerived() {
  state.behaviours.forEach((b, i) => {
    const p = successProbability(b);
    $(`fail-out-${i}`).textContent = `${b.percentage_fail}%`;
    $(`fail-${i}`).setAttribute("aria-valuetext", `${b.percentage_fail} percent`);
    const fixed = state.allowOverrides[i] === false;
    $(`fail-${i}`).disabled = fixed || b.mode !== "percentage_fail";
    $(`mode-${i}`).disabled = fixed;
    $(`delay-${i}`).disabled = fixed;
    $(`p-${i}`).textContent = isEstimate(b) ? `≈${(p * 100).toFixed(1)}% (estimate)` : `${(p * 100).toFixed(1)}%`;
  });
  const k = maxAttempts();
  const oracle = oracleSuccess(state.behaviours, k);
  const estimated = state.behaviours.filter(isEstimate).map((b) => b.mode);
  const el = $("oracle-text");
  el.dataset.estimate = estimated.length ? "true" : "false";
  el.textContent = estimated.length
    ? `with ${k} attempt${k === 1 ? "" : "s"} on distinct downstreams, the best possible success rate is an estimate: ` +
      `≈${(oracle * 100).toFixed(1)}% (${[...new Set(estimated)].join(" and ")} counted as ` +
      `${estimated.includes("rate_limited") ? "always under its limit" : ""}` +
      `${estimated.includes("rate_limited") && estimated.includes("cyclic_outage") ? ", " : ""}` +
      `${estimated.includes("cyclic_outage") ? "up two thirds of the time (20 s up, 10 s down)" : ""}; ` +
      `the strategies share those limits and outages, so the real figure may be lower)`
    : `with ${k} attempt${k === 1 ? "" : "s"} on distinct downstreams, the best possible success rate is ${(oracle * 100).toFixed(1)}%`;
}

/** Sets the controls to a scenario's phase (a change like any other: the next round uses it). */
export function applyScenarioPhase(scenario, phase) {
  state.behaviours = scenario.phases[phase].downstreams.map((b) => ({ ...b }));
  markChanged();
  writeControls();
}

/** The phase request `index` of `total` falls in (the lab's Scenario::phase_index). */
export function phaseIndex(scenario, index, total) {
  const at = index / Math.max(1, total);
  let phase = 0;
  scenario.phases.forEach((p, i) => {
    if (p.from <= at) phase = i;
  });
  return phase;
}

const MANUAL_NOTE = "manual: the controls apply to the next requests";

/** Leaves any scenario: the controls alone decide the fleet's behaviour from the next request. */
function toManual() {
  state.scenario = null;
  $("scenario").value = "";
  $("scenario-note").textContent = MANUAL_NOTE;
}

function buildScenarioSelect() {
  const select = $("scenario");
  select.querySelectorAll("option[value]:not([value=''])").forEach((o) => o.remove());
  for (const s of state.scenarios) {
    const option = document.createElement("option");
    option.value = s.name;
    const size = s.phases[0].downstreams.length;
    option.textContent = `${s.name}${size !== names().length ? ` (needs ${size} downstreams)` : ""}`;
    option.disabled = size !== names().length;
    select.append(option);
  }
  select.onchange = () => {
    const s = state.scenarios.find((x) => x.name === select.value) || null;
    state.scenario = s;
    if (s) {
      applyScenarioPhase(s, 0);
      $("scenario-note").textContent = s.phases.length > 1
        ? `${s.description}; phases switch at the same request number for every strategy`
        : s.description;
    } else {
      $("scenario-note").textContent = MANUAL_NOTE;
    }
  };
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
  const changed = () => box.dispatchEvent(new Event("change", { bubbles: true }));
  $("algos-all").onclick = () => {
    box.querySelectorAll("input").forEach((el) => (el.checked = true));
    changed();
  };
  $("algos-none").onclick = () => {
    box.querySelectorAll("input").forEach((el) => (el.checked = false));
    changed();
  };
}

/**
 * Each downstream's own configuration, read through the lab server (GET /api/downstreams/config).
 * The controls start from it; a downstream that does not answer starts at All_Success, and the
 * page says so.
 */
export async function loadConfigured() {
  let reported = [];
  let why = "";
  try {
    reported = (await fetchJson("/api/downstreams/config", {}, 8000)).downstreams || [];
  } catch (e) {
    why = e.message;
  }
  const unreported = [];
  const fixed = [];
  state.configured = names().map((name, i) => {
    const entry = reported.find((d) => d.name === name);
    const behaviour = behaviourOf(entry && entry.config);
    state.behaviours[i] = behaviour ? { ...behaviour } : defaultBehaviour();
    state.allowOverrides[i] = entry && entry.config ? entry.config.allow_overrides !== false : null;
    const source = $(`source-${i}`);
    if (behaviour) {
      source.textContent = state.allowOverrides[i] === false ? "own configuration, fixed" : "own configuration";
      source.title = state.allowOverrides[i] === false
        ? "the downstream's own configuration (GET /); it ignores overrides (ALLOW_OVERRIDES is not true)"
        : "the downstream's own configuration (GET /)";
      source.className = "hint";
    } else {
      const reason = (entry && entry.error) || why || "no answer";
      source.textContent = "not reported: All_Success assumed";
      source.title = reason;
      source.className = "warn-text";
      unreported.push(`${name} (${reason})`);
    }
    if (state.allowOverrides[i] === false) {
      fixed.push(`${name} ignores overrides: its controls show its own configuration and cannot change it`);
    }
    return behaviour;
  });
  const note = $("fleet-note");
  const parts = [];
  if (unreported.length) {
    parts.push(`Could not read the configuration of ${unreported.join(", ")}: ` +
      `those controls start at All_Success, 0%, 0 ms, which may not be how the downstream behaves on its own.`);
  }
  if (fixed.length) parts.push(fixed.join("; ") + ".");
  note.textContent = parts.join(" ");
  note.hidden = parts.length === 0;
  markChanged();
  writeControls();
}

/** Reads the router's fleet (through the page's server, which holds the router's admin token)
 * and builds the controls; false while the router does not answer. */
export async function loadFleet() {
  try {
    state.fleet = await fetchJson("/api/fleet");
  } catch (e) {
    return false;
  }
  state.behaviours = names().map(() => defaultBehaviour());
  state.allowOverrides = names().map(() => null);
  $("success-definition").textContent = state.fleet.success_definition || "(the router did not say)";
  const budget = state.fleet.max_attempts || 3;
  for (const option of $("max-attempts").options) option.disabled = Number(option.value) > budget;
  buildFleetTable();
  buildAlgoChoices();
  buildScenarioSelect();
  $("fleet-reset").onclick = () => {
    toManual();
    loadConfigured();
  };
  $("fleet-waiting").hidden = true;
  $("fleet-reset-row").hidden = false;
  await loadConfigured();
  $("start").disabled = !!(state.run && state.run.running);
  showAlert("run", "");
  return true;
}
