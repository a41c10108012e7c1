// Recomputes every lane of a lab results.json with the page's metrics.js and compares with the
// lab's own summary (tools/lab, magnetar-core metrics): one set of definitions, two
// implementations. Run by e2e/tests/lab.rs:  node test-bed/tests/metrics-check.mjs results.json
// Prints {"lanes": n, "mismatches": [...]} and exits 1 on any mismatch.
import { readFileSync } from "node:fs";
import { summarize } from "../metrics.js";

const report = JSON.parse(readFileSync(process.argv[2], "utf8"));
const exact = ["requests", "successes", "attempts", "max_attempts", "best_guess_score", "errors", "traffic_share_source"];
const close = ["success_rate", "first_attempt_success_rate", "attempts_per_request", "realized_regret", "duration_s", "throughput_rps"];
// Latency buckets are 1% wide; a last-ulp difference in a logarithm may move a value across a
// bucket edge, so latencies compare within one bucket.
const latency = ["latency_p50_ms", "latency_p99_ms"];
const mismatches = [];
for (const lane of report.lanes) {
  const page = summarize(lane.samples, report.fleet, lane.downstream_counts ?? null);
  const lab = lane.summary;
  const differ = (field, a, b) => mismatches.push({ lane: lane.label, field, page: a, lab: b });
  for (const f of exact) if (page[f] !== lab[f]) differ(f, page[f], lab[f]);
  for (const f of close) if (Math.abs(page[f] - lab[f]) > 1e-6 * Math.max(1, Math.abs(lab[f]))) differ(f, page[f], lab[f]);
  for (const f of latency) if (Math.abs(page[f] / lab[f] - 1) > 0.0101) differ(f, page[f], lab[f]);
  if (page.repeat_tries !== lab.repeat_tries) differ("repeat_tries", page.repeat_tries, lab.repeat_tries);
  const rtPage = page.repeat_try_rate;
  const rtLab = lab.repeat_try_rate;
  if ((rtPage === null) !== (rtLab === null) || (rtPage !== null && Math.abs(rtPage - rtLab) > 1e-9)) {
    differ("repeat_try_rate", rtPage, rtLab);
  }
  for (const f of ["traffic_share", "arm_success_rate"]) {
    const a = page[f];
    const b = lab[f];
    if (a.length !== b.length || a.some((v, i) => Math.abs(v - b[i]) > 1e-9)) differ(f, a, b);
  }
}
console.log(JSON.stringify({ lanes: report.lanes.length, mismatches }));
process.exit(mismatches.length ? 1 : 0);
