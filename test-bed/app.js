// The test-bed page: fleet controls (fleet.js), a stress comparison of strategies through the
// router, interleaved as the lab runs them (run.js), live charts (charts.js, Chart.js), the
// learner's posteriors and the health of the router and the learner (monitor.js), export
// (export.js). Figures come from metrics.js, which uses the lab's and magnetar-core's definitions.
import { $, fetchJson, showAlert, state } from "./dom.js";
import { makeCharts } from "./charts.js";
import { enableExport } from "./export.js";
import { refreshDerived } from "./fleet.js";
import {
  HEALTH_EVERY_MS,
  POSTERIORS_EVERY_MS,
  checkHealth,
  refreshPosteriorChoices,
  refreshPosteriors,
} from "./monitor.js";
import { startRun, stopRun, updateLoadNote } from "./run.js";

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
  enableExport();
  $("max-attempts").addEventListener("change", () => {
    if (state.fleet) refreshDerived();
  });
  for (const id of ["algos", "concurrency", "rate", "shape-rate", "shape-concurrency"]) {
    $(id).addEventListener("input", updateLoadNote);
    $(id).addEventListener("change", updateLoadNote);
  }
  $("posterior-lane").addEventListener("change", refreshPosteriors);
  document.addEventListener("magnetar:run-started", () => {
    refreshPosteriorChoices();
    refreshPosteriors();
  });
  document.addEventListener("magnetar:run-finished", refreshPosteriors);
  refreshPosteriorChoices();
  await checkHealth();
  updateLoadNote();
  setInterval(checkHealth, HEALTH_EVERY_MS);
  setInterval(refreshPosteriors, POSTERIORS_EVERY_MS);
  refreshPosteriors();
  document.body.dataset.ready = "true";
}

main().catch((e) => showAlert("run", `The page could not start: ${e.message}`));
