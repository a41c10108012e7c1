// The test-bed page's figures: the same definitions as the lab (tools/lab/src/metrics.rs) and
// magnetar-sim's metrics (sim/src/metrics.rs). Pure functions, no DOM: the e2e lab test runs
// this file under Node on the lab's samples and checks that both compute the same numbers.
//
// A sample is what one request produced:
//   { index, sent_ms, latency_ms, status, success, attempts, worker, oracle, error?, tried? }
// `tried` (peers, in the lab) names the downstream of every try, in order.
// `success` is the router's verdict (x-magnetar-outcome); `oracle` the probability that an oracle
// serves the request (oracleSuccess below) under the fleet behaviour it was sent with.

/** Attempts per request that cost nothing in the best-guess score (magnetar-core). */
export const FREE_ATTEMPTS = 3;
/** Window of the rolling success rate, requests. */
export const ROLLING_WINDOW = 50;

// magnetar-core's LatencyHistogram: log buckets of 1% from 0.01 ms; a quantile reads as the
// middle of its bucket.
const LATENCY_PRECISION = 0.01;
const LATENCY_MIN_MS = 0.01;
const LATENCY_BUCKETS = 2400;

function latencyBucket(ms) {
  if (!(ms > LATENCY_MIN_MS)) return 0;
  const i = Math.floor(Math.log(ms / LATENCY_MIN_MS) / Math.log1p(LATENCY_PRECISION));
  return Math.min(i, LATENCY_BUCKETS - 1);
}

/** The q-quantile (0..1) of latencies, as magnetar-core's histogram computes it. */
export function latencyQuantile(latencies, q) {
  if (latencies.length === 0) return 0;
  const buckets = latencies.map(latencyBucket).sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(Math.min(Math.max(q, 0), 1) * latencies.length));
  const i = buckets[rank - 1];
  return LATENCY_MIN_MS * Math.pow(1 + LATENCY_PRECISION, i + 0.5);
}

/** Probability that one attempt on a downstream with this behaviour succeeds (lab: Behaviour). */
export function successProbability(b) {
  switch (String(b.mode).toLowerCase()) {
    case "all_success":
    case "rate_limited":
      return 1;
    case "all_fail":
      return 0;
    case "percentage_fail":
      return Math.min(1, Math.max(0, 1 - b.percentage_fail / 100));
    case "cyclic_outage":
      return 20 / 30;
    default:
      return 0;
  }
}

/**
 * Whether successProbability is an estimate for this behaviour: `rate_limited` is assumed under
 * its limit and `cyclic_outage` up two thirds of the time (its default 20 s up, 10 s down), while
 * the real figures depend on the load and the clock.
 */
export function isEstimate(b) {
  const mode = String(b.mode).toLowerCase();
  return mode === "rate_limited" || mode === "cyclic_outage";
}

/**
 * Probability that an oracle serves a request: it tries the best downstreams first, one distinct
 * downstream per attempt, so it fails only when the best `maxAttempts` all fail.
 */
export function oracleSuccess(behaviours, maxAttempts) {
  const p = behaviours.map(successProbability).sort((a, b) => b - a);
  let allFail = 1;
  for (const s of p.slice(0, Math.max(1, maxAttempts))) allFail *= 1 - s;
  return 1 - allFail;
}

/** The x-flaky-config header for a fleet: a map keyed by downstream name. */
export function flakyHeader(names, behaviours) {
  const map = {};
  names.forEach((name, i) => {
    const b = behaviours[i];
    map[name] = { mode: b.mode, percentage_fail: b.percentage_fail, delay_ms: b.delay_ms };
  });
  return JSON.stringify(map);
}

function byIndex(samples) {
  return [...samples].sort((a, b) => a.index - b.index);
}

/**
 * A lane's summary. `counts` are the downstreams' own counters for the lane
 * ([{name, requests, successes}] in fleet order) or null; without them the traffic share is the
 * share of final attempts.
 */
export function summarize(samples, fleet, counts) {
  const n = samples.length;
  const ratio = (a, b) => (b === 0 ? 0 : a / b);
  let successes = 0;
  let first = 0;
  let attempts = 0;
  let beyond = 0;
  let maxAttempts = 0;
  let regret = 0;
  let errors = 0;
  let end = 0;
  for (const s of byIndex(samples)) {
    successes += s.success ? 1 : 0;
    first += s.success && s.attempts === 1 ? 1 : 0;
    attempts += s.attempts;
    beyond += Math.max(0, s.attempts - FREE_ATTEMPTS);
    maxAttempts = Math.max(maxAttempts, s.attempts);
    regret += s.oracle - (s.success ? 1 : 0);
    errors += s.error ? 1 : 0;
    end = Math.max(end, s.sent_ms + s.latency_ms);
  }
  const latencies = samples.map((s) => s.latency_ms);
  let trafficShare;
  let source;
  let armSuccess = [];
  if (counts && counts.length === fleet.length) {
    const total = counts.reduce((t, c) => t + c.requests, 0);
    trafficShare = counts.map((c) => ratio(c.requests, total));
    armSuccess = counts.map((c) => ratio(c.successes, c.requests));
    source = "downstream_counters";
  } else {
    trafficShare = fleet.map((name) => ratio(samples.filter((s) => s.worker === name).length, n));
    source = "final_attempts";
  }
  const known = samples.filter((s) => Array.isArray(s.tried));
  let repeatTries = null;
  let repeatTryRate = null;
  if (known.length) {
    let repeats = 0;
    let retries = 0;
    for (const s of known) {
      repeats += s.tried.filter((d, i) => s.tried.slice(0, i).includes(d)).length;
      retries += Math.max(0, s.tried.length - 1);
    }
    repeatTries = repeats;
    repeatTryRate = ratio(repeats, retries);
  }
  return {
    requests: n,
    successes,
    success_rate: ratio(successes, n),
    first_attempt_success_rate: ratio(first, n),
    attempts,
    attempts_per_request: ratio(attempts, n),
    max_attempts: maxAttempts,
    best_guess_score: successes - beyond,
    latency_p50_ms: latencyQuantile(latencies, 0.5),
    latency_p99_ms: latencyQuantile(latencies, 0.99),
    realized_regret: regret,
    traffic_share: trafficShare,
    traffic_share_source: source,
    arm_success_rate: armSuccess,
    repeat_tries: repeatTries,
    repeat_try_rate: repeatTryRate,
    errors,
    duration_s: end / 1000,
    throughput_rps: end > 0 ? n / (end / 1000) : 0,
  };
}

/** Success rate over the last `window` requests after each request, in request-index order. */
export function rollingSuccess(samples, window = ROLLING_WINDOW) {
  const ordered = byIndex(samples);
  const out = [];
  let inWindow = 0;
  ordered.forEach((s, i) => {
    inWindow += s.success ? 1 : 0;
    if (i >= window) inWindow -= ordered[i - window].success ? 1 : 0;
    out.push(inWindow / Math.min(i + 1, window));
  });
  return out;
}

/** Realized regret after each request, in request-index order. */
export function cumulativeRegret(samples) {
  let total = 0;
  return byIndex(samples).map((s) => (total += s.oracle - (s.success ? 1 : 0)));
}

/** Mean and an approximately 95% interval (normal approximation) of Beta(1 + s, 1 + f). */
export function betaSummary(successes, failures) {
  const a = 1 + successes;
  const b = 1 + failures;
  const mean = a / (a + b);
  const sd = Math.sqrt((a * b) / ((a + b) ** 2 * (a + b + 1)));
  return { mean, low: Math.max(0, mean - 1.96 * sd), high: Math.min(1, mean + 1.96 * sd) };
}
