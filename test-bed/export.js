// Export of the last run as JSON (the lab's results.json layout, lanes and samples) or CSV (one row
// per strategy, the lab's summary.csv columns).
import { $, names, state } from "./dom.js";
import { laneSummary } from "./charts.js";

/** Version of the export's layout (the lab's RESULTS_SCHEMA). */
export const EXPORT_SCHEMA = 2;

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

export function exportJson() {
  const run = state.run;
  const report = {
    schema: EXPORT_SCHEMA,
    tool: "magnetar test-bed page",
    started_at_unix_ms: run.startedAt,
    router: state.config.router,
    learner: state.config.learner,
    settings: run.settings,
    fleet: names(),
    success_definition: state.fleet.success_definition,
    // Every fleet behaviour the run used, from the request number it applied to every lane.
    fleet_behaviour: run.configs,
    lanes: run.lanes.map((l) => ({
      label: l.label, kind: "magnetar", route: l.route, tag: l.tag, summary: laneSummary(l),
      downstream_counts: l.counts, samples: l.samples,
    })),
  };
  download(`magnetar-test-bed-${run.id}.json`, "application/json", JSON.stringify(report, null, 2));
}

export function exportCsv() {
  const run = state.run;
  const head = ["lane", "kind", "requests", "successes", "success_rate", "first_attempt_success_rate", "attempts",
    "attempts_per_request", "repeat_tries", "repeat_try_rate", "best_guess_score", "latency_p50_ms", "latency_p99_ms",
    "realized_regret", "errors", ...names().map((n) => `share_${n}`)];
  const rows = run.lanes.map((l) => {
    const s = laneSummary(l);
    return [l.label, "magnetar", s.requests, s.successes, s.success_rate, s.first_attempt_success_rate, s.attempts,
      s.attempts_per_request, s.repeat_tries ?? "", s.repeat_try_rate ?? "", s.best_guess_score, s.latency_p50_ms,
      s.latency_p99_ms, s.realized_regret, s.errors, ...s.traffic_share];
  });
  download(`magnetar-test-bed-${run.id}.csv`, "text/csv", [head, ...rows].map((r) => r.join(",")).join("\n") + "\n");
}

export function enableExport() {
  $("export-json").addEventListener("click", exportJson);
  $("export-csv").addEventListener("click", exportCsv);
}
