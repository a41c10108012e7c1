//! Retry planning for one client request.
//!
//! An [`AttemptPlan`] tracks the attempts of one request: at most `max_attempts` (default
//! [`DEFAULT_MAX_ATTEMPTS`] = 3, the penalty-free budget), a different downstream on each attempt
//! by default ([`AttemptPlan::distinct`]), and retries only after retryable outcomes
//! ([`Outcome::is_retryable`]) while the overall deadline allows.
//!
//! Whether a request may be sent again at all is [`Replay`], decided once per request by
//! [`Replay::of`]: a body larger than [`REPLAY_LIMIT_BYTES`] (64 KiB, Linkerd's rule for
//! buffering a body to replay it) is sent once and never retried; GET, HEAD, OPTIONS, TRACE, PUT
//! and DELETE (idempotent, RFC 9110 section 9.2.2) are retried after any retryable outcome; POST,
//! PATCH and other methods only after a connection error, when nothing reached the origin, unless
//! the client sends an `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header).
//!
//! A [`RetryBudget`] (module [`budget`]) caps retries across requests: each request deposits a
//! share of a token, each retry withdraws one. [`AttemptPlan::record_budgeted`] consults it before
//! answering [`Next::Retry`].

use crate::Outcome;
use crate::arm::ArmId;
use crate::select::SelectContext;

pub mod budget;

pub use budget::{RetryBudget, RetryBudgetConfig};

/// Attempts a request gets by default; attempts up to this number carry no penalty.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Deadline of one attempt (`ATTEMPT_TIMEOUT_MS`).
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 2_000;
/// Hard upper bound on attempts per request, whatever the configuration says.
pub const MAX_ATTEMPTS_CAP: u32 = 10;

/// Bodies larger than this are sent once and never retried.
pub const REPLAY_LIMIT_BYTES: usize = 64 * 1024;
/// The header that makes a non-idempotent request safe to retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// After which outcomes a request may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// After any retryable outcome ([`Outcome::is_retryable`]).
    Any,
    /// Only after [`Outcome::ConnectError`]: the request did not reach the origin.
    ConnectErrorOnly,
    /// Never: the body is too large to keep for a second send.
    Never,
}

impl Replay {
    /// The rule for a request with `method` (any case), a body of `body_len` bytes, and
    /// whether it carries an `Idempotency-Key` header.
    pub fn of(method: &str, body_len: usize, idempotency_key: bool) -> Replay {
        const IDEMPOTENT: [&str; 6] = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];
        if body_len > REPLAY_LIMIT_BYTES {
            Replay::Never
        } else if idempotency_key || IDEMPOTENT.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            Replay::Any
        } else {
            Replay::ConnectErrorOnly
        }
    }

    /// Whether a request may be sent again after `outcome`.
    pub fn allows(self, outcome: Outcome) -> bool {
        match self {
            Replay::Any => outcome.is_retryable(),
            Replay::ConnectErrorOnly => outcome == Outcome::ConnectError,
            Replay::Never => false,
        }
    }
}

/// One finished attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub arm: ArmId,
    pub outcome: Outcome,
    /// HTTP status when the downstream answered.
    pub status: Option<u16>,
    pub latency_ms: f64,
    /// Whether the attempt was sent as a hedge ([`crate::hedge`]) while another was in flight.
    pub hedged: bool,
}

/// What the caller should do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again (with [`AttemptPlan::excluded`] vetoed).
    Retry,
    /// Stop: the last attempt's answer goes to the client.
    Answer,
    /// Stop: every attempt failed (budget, deadline or fleet exhausted).
    GiveUp,
}

/// Which downstreams a retry may go to (`DISTINCT_DOWNSTREAMS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryMode {
    /// Never a downstream already tried for the request (`true`, the default).
    #[default]
    Distinct,
    /// Any downstream, tried or not (`false`).
    Repeat,
    /// A downstream not tried yet, or the previous attempt's downstream again, as the strategy
    /// decides (`auto`: for strategies that learn whether repeating a downstream pays).
    Auto,
}

impl RetryMode {
    /// The configuration value (`true`, `false`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            RetryMode::Distinct => "true",
            RetryMode::Repeat => "false",
            RetryMode::Auto => "auto",
        }
    }
}

/// The attempts of one request.
#[derive(Clone, Debug)]
pub struct AttemptPlan {
    max_attempts: u32,
    mode: RetryMode,
    fleet_len: usize,
    deadline_ms: u64,
    started_ms: Option<u64>,
    attempts: Vec<AttemptRecord>,
    excluded: Vec<ArmId>,
    budget_denied: bool,
    replay: Replay,
}

impl AttemptPlan {
    /// A plan for a request that must finish by `deadline_ms` (caller's clock).
    /// `max_attempts` is clamped to `1..=MAX_ATTEMPTS_CAP`.
    pub fn new(max_attempts: u32, fleet_len: usize, deadline_ms: u64) -> Self {
        AttemptPlan {
            max_attempts: max_attempts.clamp(1, MAX_ATTEMPTS_CAP),
            mode: RetryMode::Distinct,
            fleet_len,
            deadline_ms,
            started_ms: None,
            attempts: Vec::new(),
            excluded: Vec::new(),
            budget_denied: false,
            replay: Replay::Any,
        }
    }

    /// After which outcomes the request may be sent again (default [`Replay::Any`]). An outcome
    /// the request may not be retried after ends it with [`Next::GiveUp`] when it is a failure.
    pub fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }

    /// Whether each attempt must go to a downstream not yet tried (default true). When false,
    /// the same downstream may be retried.
    pub fn distinct(mut self, distinct: bool) -> Self {
        self.mode = if distinct { RetryMode::Distinct } else { RetryMode::Repeat };
        self
    }

    /// Notes when the request arrived (for [`SelectContext::elapsed_ms`]).
    pub fn started_at(mut self, started_ms: u64) -> Self {
        self.started_ms = Some(started_ms);
        self
    }

    /// The deadline for the next attempt sent at `now_ms`: the configured `attempt_timeout_ms`,
    /// bounded by the request's deadline and, when a retry could follow this attempt, by the
    /// strategy's `hint` ([`Strategy::attempt_deadline_ms`](crate::strategy::Strategy)).
    pub fn attempt_timeout_ms(
        &self,
        now_ms: u64,
        attempt_timeout_ms: u64,
        hint: Option<f64>,
    ) -> u64 {
        let left = self.deadline_ms.saturating_sub(now_ms).max(1);
        let mut timeout = attempt_timeout_ms.min(left);
        if self.remaining() > 1 {
            if let Some(h) = hint.filter(|h| h.is_finite() && *h >= 1.0) {
                timeout = timeout.min(h.ceil() as u64);
            }
        }
        timeout.max(1)
    }

    /// Sets which downstreams a retry may go to.
    pub fn mode(mut self, mode: RetryMode) -> Self {
        self.mode = mode;
        self
    }

    /// Attempts left, the next one included (0 once the budget is spent).
    pub fn remaining(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts.len() as u32)
    }

    /// The previous attempt's downstream when the next attempt may repeat it ([`RetryMode::Auto`]
    /// and [`RetryMode::Repeat`]); `None` on the first attempt and in [`RetryMode::Distinct`].
    pub fn previous(&self) -> Option<ArmId> {
        match self.mode {
            RetryMode::Distinct => None,
            RetryMode::Repeat | RetryMode::Auto => self.attempts.last().map(|a| a.arm),
        }
    }

    /// What a strategy is told for the next attempt at `now_ms`.
    pub fn select_context(&self, now_ms: u64) -> SelectContext<'_> {
        SelectContext::new(&self.excluded, self.next_attempt(), now_ms)
            .remaining(self.remaining())
            .previous(self.previous())
            .elapsed(self.started_ms.map_or(0, |t| now_ms.saturating_sub(t)))
    }

    /// 1-based number of the next attempt.
    pub fn next_attempt(&self) -> u32 {
        self.attempts.len() as u32 + 1
    }

    /// The attempt budget of this request.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// After which outcomes the request may be sent again.
    pub fn replay_rule(&self) -> Replay {
        self.replay
    }

    /// Downstreams in the fleet.
    pub fn fleet_len(&self) -> usize {
        self.fleet_len
    }

    /// The request's deadline (caller's clock).
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// When the request arrived, if noted ([`started_at`](AttemptPlan::started_at)).
    pub fn started_ms(&self) -> Option<u64> {
        self.started_ms
    }

    /// Arms to veto for the next attempt.
    pub fn excluded(&self) -> &[ArmId] {
        &self.excluded
    }

    /// The attempts so far.
    pub fn attempts(&self) -> &[AttemptRecord] {
        &self.attempts
    }

    /// Records an attempt's result and says what to do next, given the time now.
    pub fn record(&mut self, attempt: AttemptRecord, now_ms: u64) -> Next {
        let outcome = attempt.outcome;
        match self.mode {
            RetryMode::Distinct if !self.excluded.contains(&attempt.arm) => {
                self.excluded.push(attempt.arm);
            }
            // Every tried downstream but the one just tried is vetoed.
            RetryMode::Auto => {
                if let Some(prev) = self.attempts.last().map(|a| a.arm) {
                    if prev != attempt.arm && !self.excluded.contains(&prev) {
                        self.excluded.push(prev);
                    }
                }
            }
            _ => {}
        }
        self.attempts.push(attempt);
        if !outcome.is_retryable() {
            return Next::Answer;
        }
        let budget_left = (self.attempts.len() as u32) < self.max_attempts;
        let hosts_left = self.mode != RetryMode::Distinct || self.excluded.len() < self.fleet_len;
        let replayable = self.replay.allows(outcome);
        if replayable && budget_left && hosts_left && now_ms < self.deadline_ms {
            Next::Retry
        } else {
            Next::GiveUp
        }
    }

    /// Like [`record`](AttemptPlan::record), but a retry must also be paid for from `budget`:
    /// when the budget is spent the answer is [`Next::GiveUp`] and
    /// [`budget_denied`](AttemptPlan::budget_denied) becomes true. The caller deposits into the
    /// budget once per client request.
    pub fn record_budgeted(
        &mut self,
        attempt: AttemptRecord,
        now_ms: u64,
        budget: &mut RetryBudget,
    ) -> Next {
        match self.record(attempt, now_ms) {
            Next::Retry if !budget.try_withdraw(now_ms) => {
                self.budget_denied = true;
                Next::GiveUp
            }
            next => next,
        }
    }

    /// Whether the retry budget refused a retry of this request.
    pub fn budget_denied(&self) -> bool {
        self.budget_denied
    }

    /// Whether the request ended in success.
    pub fn succeeded(&self) -> bool {
        self.attempts.last().is_some_and(|a| a.outcome.is_success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(arm: ArmId, outcome: Outcome) -> AttemptRecord {
        AttemptRecord { arm, outcome, status: None, latency_ms: 1.0, hedged: false }
    }

    #[test]
    fn retries_distinct_hosts_up_to_the_budget() {
        let mut plan = AttemptPlan::new(3, 5, 1_000);
        assert_eq!(plan.record(rec(0, Outcome::ServerError), 10), Next::Retry);
        assert_eq!(plan.excluded(), [0]);
        assert_eq!(plan.next_attempt(), 2);
        assert_eq!(plan.record(rec(3, Outcome::Timeout), 20), Next::Retry);
        assert_eq!(plan.record(rec(1, Outcome::RateLimited), 30), Next::GiveUp);
        assert_eq!(plan.attempts().len(), 3);
        assert!(!plan.succeeded());
    }

    #[test]
    fn success_and_client_errors_are_answered_at_once() {
        let mut plan = AttemptPlan::new(3, 3, 1_000);
        assert_eq!(plan.record(rec(0, Outcome::Success), 1), Next::Answer);
        assert!(plan.succeeded());
        let mut plan = AttemptPlan::new(3, 3, 1_000);
        assert_eq!(plan.record(rec(0, Outcome::ClientError), 1), Next::Answer);
    }

    #[test]
    fn stops_when_fleet_or_deadline_is_exhausted() {
        let mut plan = AttemptPlan::new(3, 2, 1_000);
        plan.record(rec(0, Outcome::ServerError), 1);
        assert_eq!(plan.record(rec(1, Outcome::ServerError), 2), Next::GiveUp);

        let mut plan = AttemptPlan::new(3, 3, 100);
        assert_eq!(plan.record(rec(0, Outcome::ServerError), 100), Next::GiveUp);

        let mut plan = AttemptPlan::new(3, 1, 1_000).distinct(false);
        plan.record(rec(0, Outcome::ServerError), 1);
        assert!(plan.excluded().is_empty());
        assert_eq!(plan.record(rec(0, Outcome::ServerError), 2), Next::Retry);
    }

    #[test]
    fn the_retry_budget_can_refuse_a_retry() {
        let mut budget = RetryBudget::new(RetryBudgetConfig {
            retry_percent: 0.0,
            min_per_sec: 1,
            ttl_ms: 1_000,
        });
        let mut plan = AttemptPlan::new(3, 3, 10_000);
        assert_eq!(plan.record_budgeted(rec(0, Outcome::ServerError), 1, &mut budget), Next::Retry);
        assert!(!plan.budget_denied());
        assert_eq!(
            plan.record_budgeted(rec(1, Outcome::ServerError), 2, &mut budget),
            Next::GiveUp
        );
        assert!(plan.budget_denied());
    }

    #[test]
    fn auto_mode_allows_repeating_only_the_previous_downstream() {
        let mut plan = AttemptPlan::new(4, 3, 1_000).mode(RetryMode::Auto);
        assert_eq!(plan.select_context(0).previous, None);
        assert_eq!(plan.select_context(0).remaining, 4);
        assert_eq!(plan.record(rec(2, Outcome::ServerError), 1), Next::Retry);
        assert!(plan.excluded().is_empty());
        assert_eq!(plan.previous(), Some(2));
        assert_eq!(plan.record(rec(2, Outcome::ServerError), 2), Next::Retry);
        assert!(plan.excluded().is_empty(), "a repeat vetoes nothing new");
        assert_eq!(plan.record(rec(0, Outcome::Timeout), 3), Next::Retry);
        assert_eq!(plan.excluded(), [2], "2 is no longer the previous downstream");
        let ctx = plan.select_context(4);
        assert_eq!((ctx.previous, ctx.remaining, ctx.attempt), (Some(0), 1, 4));
        assert_eq!(AttemptPlan::new(3, 3, 0).select_context(0).previous, None);
    }

    #[test]
    fn a_strategy_may_shorten_an_attempt_only_when_a_retry_can_follow() {
        let mut plan = AttemptPlan::new(2, 3, 5_000).started_at(1_000);
        assert_eq!(plan.attempt_timeout_ms(1_000, 2_000, Some(150.4)), 151);
        assert_eq!(plan.attempt_timeout_ms(1_000, 2_000, Some(f64::NAN)), 2_000);
        assert_eq!(plan.attempt_timeout_ms(4_500, 2_000, None), 500, "the request's deadline");
        assert_eq!(plan.select_context(1_250).elapsed_ms, 250);
        plan.record(rec(0, Outcome::ServerError), 1_200);
        assert_eq!(plan.attempt_timeout_ms(1_200, 2_000, Some(150.0)), 2_000, "the last attempt");
    }

    #[test]
    fn idempotent_methods_retry_and_others_only_after_connection_errors() {
        for method in ["GET", "head", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            assert_eq!(Replay::of(method, 10, false), Replay::Any, "{method}");
        }
        for method in ["POST", "patch", "CONNECT", "PROPFIND"] {
            assert_eq!(Replay::of(method, 10, false), Replay::ConnectErrorOnly, "{method}");
            assert_eq!(Replay::of(method, 10, true), Replay::Any, "{method} with a key");
        }
        assert_eq!(Replay::of("PUT", REPLAY_LIMIT_BYTES, false), Replay::Any);
        assert_eq!(Replay::of("PUT", REPLAY_LIMIT_BYTES + 1, true), Replay::Never);

        let post = Replay::ConnectErrorOnly;
        for (outcome, next) in [
            (Outcome::ServerError, Next::GiveUp),
            (Outcome::Timeout, Next::GiveUp),
            (Outcome::RateLimited, Next::GiveUp),
            (Outcome::ConnectError, Next::Retry),
            (Outcome::Success, Next::Answer),
            (Outcome::ClientError, Next::Answer),
        ] {
            let mut plan = AttemptPlan::new(3, 3, 1_000).replay(post);
            assert_eq!(plan.record(rec(0, outcome), 1), next, "POST after {outcome}");
        }
        let mut plan = AttemptPlan::new(3, 3, 1_000).replay(Replay::Never);
        assert_eq!(plan.record(rec(0, Outcome::ConnectError), 1), Next::GiveUp);
        let mut plan = AttemptPlan::new(3, 3, 1_000).replay(Replay::Any);
        assert_eq!(plan.record(rec(0, Outcome::Timeout), 1), Next::Retry);
    }

    /// Every downstream fails, 100 requests a second, three attempts each allowed: the default
    /// budget (20% + 10/s over 10 s) holds retries to what deposits and the per-second minimum
    /// pay for: 300 retries per 10 s, 1.3 attempts per request over any 10 s. Within a window
    /// the minimum's reserve (100 retries) is spent in a burst when it refills, as in Finagle's
    /// and tower's budgets; the rest of the time each request pays for 0.2 retries.
    #[test]
    fn the_default_budget_holds_a_failing_fleet_to_1_3_attempts_per_request() {
        let mut budget = RetryBudget::new(RetryBudgetConfig::default());
        let mut per_second = Vec::new();
        for second in 0..30u64 {
            let mut attempts = 0;
            for i in 0..100u64 {
                let now = second * 1_000 + i * 10;
                budget.deposit(now);
                let mut plan = AttemptPlan::new(3, 3, now + 6_000);
                let mut arm = 0;
                while plan.record_budgeted(rec(arm, Outcome::ServerError), now, &mut budget)
                    == Next::Retry
                {
                    arm += 1;
                }
                attempts += plan.attempts().len();
            }
            per_second.push(attempts as f64 / 100.0);
        }
        for window in per_second.windows(10) {
            let mean = window.iter().sum::<f64>() / 10.0;
            assert!(mean <= 1.3 + 1e-9, "{mean:.3} attempts per request: {per_second:?}");
            assert!(mean >= 1.2, "the budget still pays for retries: {mean:.3} {per_second:?}");
        }
        assert!(per_second.iter().all(|&a| a <= 2.2 + 1e-9), "{per_second:?}");
    }

    #[test]
    fn budget_is_clamped() {
        assert_eq!(AttemptPlan::new(0, 3, 0).max_attempts(), 1);
        assert_eq!(AttemptPlan::new(99, 3, 0).max_attempts(), MAX_ATTEMPTS_CAP);
    }
}
