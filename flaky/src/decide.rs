//! The per-request decision: what one work request gets, given the configuration, the time and
//! an RNG, plus the state that outlives a request (the rate window and the counters).
//!
//! - `percentage_fail` draws `u ~ U[0, 1)` per request and fails when `100 u < percentage_fail`,
//!   so 0 never fails and 100 always fails.
//! - `rate_limited` keeps a sliding log of admitted requests: a request is admitted when fewer
//!   than `rate_limit_rps` were admitted in the last [`RATE_WINDOW_MS`]; rejected requests do not
//!   count. `Retry-After` is the wait until enough of the log expires, rounded up to seconds.
//! - `cyclic_outage` is a pure function of the wall clock ([`OutageCycle`]): downstreams with the
//!   same durations and offset go down together, in every isolate.
//!
//! [`RateWindow`] and [`OutageCycle`] are public so that the simulator's downstream model calls
//! them too: the simulated origin limits and goes down exactly as the real one does.

use std::collections::VecDeque;

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{FlakyConfig, Mode};

/// Length of the sliding rate-limit window.
pub const RATE_WINDOW_MS: u64 = 1_000;

/// What one work request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200 after `delay_ms`.
    Success { delay_ms: u64 },
    /// An injected failure with `status` (500..=599) after `delay_ms`.
    Failure { status: u16, delay_ms: u64 },
    /// 429 at once.
    RateLimited { retry_after_secs: u64 },
    /// 503 at once: the cyclic outage is in its down phase.
    Outage { retry_after_secs: u64 },
}

impl Verdict {
    pub fn status(&self) -> u16 {
        match self {
            Verdict::Success { .. } => 200,
            Verdict::Failure { status, .. } => *status,
            Verdict::RateLimited { .. } => 429,
            Verdict::Outage { .. } => 503,
        }
    }

    /// How long to wait before answering.
    pub fn delay_ms(&self) -> u64 {
        match self {
            Verdict::Success { delay_ms } | Verdict::Failure { delay_ms, .. } => *delay_ms,
            Verdict::RateLimited { .. } | Verdict::Outage { .. } => 0,
        }
    }

    /// Value of the `Retry-After` header, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Verdict::RateLimited { retry_after_secs } | Verdict::Outage { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            Verdict::Success { .. } | Verdict::Failure { .. } => None,
        }
    }

    /// The JSON response body; it always names the worker.
    pub fn body(&self, worker: &str, mode: Mode) -> Value {
        match self {
            Verdict::Success { delay_ms } => {
                json!({"worker": worker, "ok": true, "mode": mode, "delay_ms": delay_ms})
            }
            Verdict::Failure { status, delay_ms } => json!({
                "worker": worker, "ok": false, "error": "injected failure", "mode": mode,
                "status": status, "delay_ms": delay_ms,
            }),
            Verdict::RateLimited { retry_after_secs } => json!({
                "worker": worker, "ok": false, "error": "rate limited", "mode": mode,
                "retry_after_secs": retry_after_secs,
            }),
            Verdict::Outage { retry_after_secs } => json!({
                "worker": worker, "ok": false, "error": "outage", "mode": mode,
                "retry_after_secs": retry_after_secs,
            }),
        }
    }
}

/// Sliding log of the requests admitted in the last window ([`RATE_WINDOW_MS`] unless built with
/// [`RateWindow::with_window`]). Times are plain integers in any unit, as long as the window and
/// every `now` use the same one: the Worker counts milliseconds, the simulator microseconds.
#[derive(Clone, Debug)]
pub struct RateWindow {
    window: u64,
    admitted: VecDeque<u64>,
}

impl Default for RateWindow {
    fn default() -> Self {
        RateWindow::with_window(RATE_WINDOW_MS)
    }
}

impl RateWindow {
    /// A window of `window` time units.
    pub fn with_window(window: u64) -> Self {
        RateWindow { window, admitted: VecDeque::new() }
    }

    /// Forgets the admissions that left the window by `now`.
    fn expire(&mut self, now: u64) {
        while self.admitted.front().is_some_and(|&t| t.saturating_add(self.window) <= now) {
            self.admitted.pop_front();
        }
    }

    /// Whether a request at `now` would be rejected (`limit` already admitted in the window),
    /// without admitting it.
    pub fn is_full(&mut self, now: u64, limit: u32) -> bool {
        self.expire(now);
        self.admitted.len() >= limit as usize
    }

    /// Admits a request at `now` if fewer than `limit` were admitted in the window; otherwise
    /// returns how long until one more would be (at least 1).
    pub fn admit(&mut self, now: u64, limit: u32) -> Result<(), u64> {
        if !self.is_full(now, limit) {
            self.admitted.push_back(now);
            return Ok(());
        }
        let limit = limit as usize;
        // Room appears when the entry at `len - limit` expires (with limit 0 it never does).
        let wait = self
            .admitted
            .get(self.admitted.len() - limit)
            .map_or(self.window, |&t| (t + self.window).saturating_sub(now));
        Err(wait.max(1))
    }

    /// Requests admitted in the current window (as of the last call).
    pub fn len(&self) -> usize {
        self.admitted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.admitted.is_empty()
    }
}

/// Where the outage cycle stands at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutagePhase {
    Up { down_in_ms: u64 },
    Down { up_in_ms: u64 },
}

/// The `cyclic_outage` cycle: up for `up_ms`, then down for `down_ms`, starting (up) at every
/// multiple of `up_ms + down_ms` after `offset_ms`. A pure function of the clock, so origins with
/// the same cycle go down together, in every isolate and in the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageCycle {
    pub up_ms: u64,
    pub down_ms: u64,
    pub offset_ms: u64,
}

impl OutageCycle {
    /// The phase of the cycle at `now_ms` (Unix milliseconds in the Worker, simulated
    /// milliseconds in the simulator).
    pub fn phase(&self, now_ms: u64) -> OutagePhase {
        let period_ms = self.up_ms + self.down_ms;
        if period_ms == 0 {
            // Rejected by validation; behave as always up rather than divide by zero.
            return OutagePhase::Up { down_in_ms: u64::MAX };
        }
        let offset_ms = self.offset_ms % period_ms;
        let t = (now_ms % period_ms + period_ms - offset_ms) % period_ms;
        if t < self.up_ms {
            OutagePhase::Up { down_in_ms: self.up_ms - t }
        } else {
            OutagePhase::Down { up_in_ms: period_ms - t }
        }
    }

    /// Whether the origin is down at `now_ms`.
    pub fn is_down(&self, now_ms: u64) -> bool {
        matches!(self.phase(now_ms), OutagePhase::Down { .. })
    }
}

impl FlakyConfig {
    /// The outage cycle of `cyclic_outage` mode.
    pub fn outage_cycle(&self) -> OutageCycle {
        OutageCycle {
            up_ms: self.outage_up_secs * 1_000,
            down_ms: self.outage_down_secs * 1_000,
            offset_ms: self.outage_offset_secs * 1_000,
        }
    }
}

/// Counters of work requests; `/stats` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub requests: u64,
    /// Answered 200.
    pub successes: u64,
    /// Injected failures and outage 503s.
    pub failures: u64,
    /// Answered 429.
    pub rate_limited: u64,
    /// Answered 400 because the configuration (variables or override) was bad.
    pub invalid: u64,
}

impl Stats {
    pub(super) fn record(&mut self, verdict: &Verdict) {
        self.requests += 1;
        match verdict {
            Verdict::Success { .. } => self.successes += 1,
            Verdict::Failure { .. } | Verdict::Outage { .. } => self.failures += 1,
            Verdict::RateLimited { .. } => self.rate_limited += 1,
        }
    }

    /// Counts a work request answered 400 for bad configuration.
    pub(super) fn record_invalid(&mut self) {
        self.requests += 1;
        self.invalid += 1;
    }

    /// The `/stats` body: `{"worker": .., "requests": .., "successes": .., ...}`.
    pub fn report(&self, worker: &str) -> Value {
        let mut body = json!({"worker": worker});
        if let (Some(out), Ok(Value::Object(counts))) =
            (body.as_object_mut(), serde_json::to_value(self))
        {
            out.extend(counts);
        }
        body
    }
}

/// State of one flaky origin (one Worker isolate): the rate window and the counters.
#[derive(Clone, Debug, Default)]
pub struct FlakyState {
    window: RateWindow,
    stats: Stats,
}

impl FlakyState {
    pub fn new() -> Self {
        FlakyState::default()
    }

    /// Decides one work request and counts it.
    pub fn decide(&mut self, cfg: &FlakyConfig, now_ms: u64, rng: &mut dyn RngCore) -> Verdict {
        let verdict = match cfg.mode {
            Mode::AllSuccess => Verdict::Success { delay_ms: processing_delay(cfg, rng) },
            Mode::AllFail => {
                Verdict::Failure { status: cfg.fail_status, delay_ms: processing_delay(cfg, rng) }
            }
            Mode::PercentageFail => {
                let fails = rng.random::<f64>() * 100.0 < cfg.percentage_fail;
                let delay_ms = processing_delay(cfg, rng);
                if fails {
                    Verdict::Failure { status: cfg.fail_status, delay_ms }
                } else {
                    Verdict::Success { delay_ms }
                }
            }
            Mode::RateLimited => match self.window.admit(now_ms, cfg.rate_limit_rps) {
                Ok(()) => Verdict::Success { delay_ms: processing_delay(cfg, rng) },
                Err(wait_ms) => Verdict::RateLimited { retry_after_secs: ceil_secs(wait_ms) },
            },
            Mode::CyclicOutage => match cfg.outage_cycle().phase(now_ms) {
                OutagePhase::Up { .. } => Verdict::Success { delay_ms: processing_delay(cfg, rng) },
                OutagePhase::Down { up_in_ms } => {
                    Verdict::Outage { retry_after_secs: ceil_secs(up_in_ms) }
                }
            },
        };
        self.stats.record(&verdict);
        verdict
    }

    /// Counts a work request answered 400 for bad configuration.
    pub fn record_invalid(&mut self) {
        self.stats.record_invalid();
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Zeroes the counters and empties the rate window (`DELETE /stats`), so a test starts clean.
    pub fn reset(&mut self) {
        *self = FlakyState::default();
    }
}

fn processing_delay(cfg: &FlakyConfig, rng: &mut dyn RngCore) -> u64 {
    let jitter =
        if cfg.latency_jitter_ms == 0 { 0 } else { rng.random_range(0..=cfg.latency_jitter_ms) };
    cfg.delay_ms + jitter
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1_000).max(1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn cfg(mode: Mode) -> FlakyConfig {
        FlakyConfig { mode, ..FlakyConfig::default() }
    }

    fn phase_of(cfg: &FlakyConfig, now_ms: u64) -> OutagePhase {
        cfg.outage_cycle().phase(now_ms)
    }

    /// Failure fraction of `n` decisions at `pct` percent with a seeded RNG.
    fn failure_rate(pct: f64, n: u32, seed: u64) -> f64 {
        let cfg = FlakyConfig { percentage_fail: pct, ..cfg(Mode::PercentageFail) };
        let mut state = FlakyState::new();
        let mut rng = SmallRng::seed_from_u64(seed);
        for t in 0..n {
            state.decide(&cfg, u64::from(t), &mut rng);
        }
        let stats = state.stats();
        assert_eq!(stats.successes + stats.failures, u64::from(n));
        stats.failures as f64 / f64::from(n)
    }

    #[test]
    fn fixed_modes_answer_as_named() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut state = FlakyState::new();
        let ok = FlakyConfig { delay_ms: 25, ..cfg(Mode::AllSuccess) };
        assert_eq!(state.decide(&ok, 0, &mut rng), Verdict::Success { delay_ms: 25 });
        let fail = FlakyConfig { fail_status: 502, ..cfg(Mode::AllFail) };
        let v = state.decide(&fail, 0, &mut rng);
        assert_eq!(v, Verdict::Failure { status: 502, delay_ms: 0 });
        assert_eq!((v.status(), v.retry_after_secs()), (502, None));
        let body = v.body("downstream-1", Mode::AllFail);
        assert_eq!(
            (body["worker"].as_str(), body["ok"].as_bool()),
            (Some("downstream-1"), Some(false))
        );
        assert_eq!(
            state.stats(),
            Stats { requests: 2, successes: 1, failures: 1, rate_limited: 0, invalid: 0 }
        );
    }

    #[test]
    fn percentage_extremes_are_exact_and_the_middle_is_within_band() {
        assert_eq!(failure_rate(0.0, 2_000, 3), 0.0);
        assert_eq!(failure_rate(100.0, 2_000, 3), 1.0);
        // 20,000 draws at p = 0.3: sd = 0.0032, so +-0.02 is over 6 sd.
        let rate = failure_rate(30.0, 20_000, 7);
        assert!((rate - 0.30).abs() < 0.02, "{rate}");
    }

    #[test]
    fn jitter_stays_within_its_bound_and_varies() {
        let cfg = FlakyConfig { delay_ms: 100, latency_jitter_ms: 20, ..cfg(Mode::AllSuccess) };
        let mut rng = SmallRng::seed_from_u64(5);
        let mut state = FlakyState::new();
        let delays: Vec<u64> =
            (0..500).map(|t| state.decide(&cfg, t, &mut rng).delay_ms()).collect();
        assert!(delays.iter().all(|d| (100..=120).contains(d)));
        assert!(delays.contains(&100) && delays.contains(&120));
    }

    #[test]
    fn rate_window_slides_and_tells_when_to_retry() {
        let mut w = RateWindow::default();
        assert_eq!(w.admit(0, 3), Ok(()));
        assert_eq!(w.admit(100, 3), Ok(()));
        assert_eq!(w.admit(200, 3), Ok(()));
        assert_eq!(w.admit(300, 3), Err(700));
        assert_eq!(w.admit(999, 3), Err(1));
        assert_eq!(w.admit(1_000, 3), Ok(()));
        assert_eq!(w.admit(1_050, 3), Err(50));
        assert_eq!(w.len(), 3);
        // A lowered limit waits for enough of the log to expire.
        assert_eq!(w.admit(1_050, 1), Err(1_000 + 1_000 - 1_050));
        assert_eq!(RateWindow::default().admit(5, 0), Err(RATE_WINDOW_MS));
    }

    #[test]
    fn rate_limited_mode_answers_429_with_retry_after() {
        let cfg = FlakyConfig { rate_limit_rps: 2, ..cfg(Mode::RateLimited) };
        let mut rng = SmallRng::seed_from_u64(1);
        let mut state = FlakyState::new();
        let statuses: Vec<u16> =
            [0, 10, 20, 1_000, 1_010].map(|t| state.decide(&cfg, t, &mut rng).status()).into();
        assert_eq!(statuses, [200, 200, 429, 200, 200]);
        let v = state.decide(&cfg, 1_020, &mut rng);
        assert_eq!((v.status(), v.retry_after_secs(), v.delay_ms()), (429, Some(1), 0));
        assert_eq!(state.stats().rate_limited, 2);
        state.reset();
        assert_eq!(state.stats(), Stats::default());
        assert_eq!(state.decide(&cfg, 1_030, &mut rng).status(), 200);
    }

    #[test]
    fn outage_cycle_follows_the_clock() {
        let c = FlakyConfig { outage_up_secs: 2, outage_down_secs: 1, ..cfg(Mode::CyclicOutage) };
        assert_eq!(phase_of(&c, 0), OutagePhase::Up { down_in_ms: 2_000 });
        assert_eq!(phase_of(&c, 1_999), OutagePhase::Up { down_in_ms: 1 });
        assert_eq!(phase_of(&c, 2_000), OutagePhase::Down { up_in_ms: 1_000 });
        assert_eq!(phase_of(&c, 3_000), OutagePhase::Up { down_in_ms: 2_000 });
        let shifted = FlakyConfig { outage_offset_secs: 1, ..c.clone() };
        assert_eq!(phase_of(&shifted, 500), OutagePhase::Down { up_in_ms: 500 });
        assert_eq!(phase_of(&shifted, 1_000), OutagePhase::Up { down_in_ms: 2_000 });
        let never_up = FlakyConfig { outage_up_secs: 0, ..c.clone() };
        assert!(matches!(phase_of(&never_up, 123), OutagePhase::Down { .. }));

        let mut rng = SmallRng::seed_from_u64(1);
        let mut state = FlakyState::new();
        let v = state.decide(&c, 2_400, &mut rng);
        assert_eq!(v, Verdict::Outage { retry_after_secs: 1 });
        assert_eq!(v.status(), 503);
        assert_eq!(state.decide(&c, 3_100, &mut rng).status(), 200);
        assert_eq!(state.stats().failures, 1);
    }

    #[test]
    fn stats_report_names_the_worker() {
        let mut state = FlakyState::new();
        state.record_invalid();
        let report = state.stats().report("downstream-2");
        assert_eq!(
            report,
            json!({"worker": "downstream-2", "requests": 1, "successes": 0, "failures": 0,
                   "rate_limited": 0, "invalid": 1})
        );
    }

    proptest! {
        #[test]
        fn percentage_is_respected_within_band(pct in 0.0f64..=100.0, seed in any::<u64>()) {
            // 4,000 draws: sd <= 0.0079, so +-0.05 is over 6 sd for every p.
            let rate = failure_rate(pct, 4_000, seed);
            prop_assert!((rate - pct / 100.0).abs() < 0.05, "pct {} rate {}", pct, rate);
        }

        #[test]
        fn window_never_admits_more_than_the_limit_per_second(
            limit in 0u32..20,
            gaps in proptest::collection::vec(0u64..400, 1..200),
        ) {
            let mut w = RateWindow::default();
            let mut now = 0;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                match w.admit(now, limit) {
                    Ok(()) => admitted.push(now),
                    Err(wait) => prop_assert!((1..=RATE_WINDOW_MS).contains(&wait)),
                }
            }
            for (i, &t) in admitted.iter().enumerate() {
                let in_window = admitted[i..].iter().take_while(|&&u| u < t + RATE_WINDOW_MS).count();
                prop_assert!(in_window <= limit as usize);
            }
        }

        #[test]
        fn outage_phase_is_consistent(
            up in 0u64..100, down in 0u64..100, offset in 0u64..1_000, now in any::<u64>(),
        ) {
            prop_assume!(up + down > 0);
            let c = FlakyConfig {
                outage_up_secs: up, outage_down_secs: down, outage_offset_secs: offset,
                ..cfg(Mode::CyclicOutage)
            };
            match phase_of(&c, now) {
                OutagePhase::Up { down_in_ms } => prop_assert!((1..=up * 1_000).contains(&down_in_ms)),
                OutagePhase::Down { up_in_ms } => prop_assert!((1..=down * 1_000).contains(&up_in_ms)),
            }
        }
    }
}
