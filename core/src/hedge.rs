//! Hedged attempts: when an attempt has not answered within its downstream's usual latency, a
//! second attempt of the same request goes to a different downstream, and the first good answer
//! wins (Dean and Barroso, "The Tail at Scale", CACM 56(2), 2013: "defer sending a secondary
//! request until the first request has been outstanding for more than the 95th-percentile
//! expected latency for this class of requests", which limits the extra load to about 5%).
//!
//! Sans-io: the caller (the router, the simulator) keeps the attempts in flight as
//! [`InFlight`] values and asks [`due_ms`] when the next hedge is due; the delay comes from the
//! strategy ([`Strategy::hedge_delay_ms`](crate::strategy::Strategy::hedge_delay_ms), for
//! `magnetar` its latency model's 95th percentile once it has seen
//! [`DEADLINE_MIN_SAMPLES`](crate::strategy::magnetar::DEADLINE_MIN_SAMPLES) answers). A hedge
//! is sent only when all of these hold:
//!
//! - `HEDGE=auto` ([`HedgeMode::Auto`], the default; `off` never hedges);
//! - the request may be sent twice ([`Replay::Any`]: idempotent, or with an `Idempotency-Key`);
//! - the request has an attempt left for it: a hedge is an attempt of the [`AttemptPlan`];
//! - fewer than [`MAX_IN_FLIGHT`] attempts are in flight (the Workers runtime's limit of six
//!   simultaneous open connections per request);
//! - a downstream neither tried nor in flight is left ([`exclusions`]: a hedge never goes to a
//!   downstream already serving the request);
//! - the delay ends before the newest attempt's own timeout and the request's deadline;
//! - the caller's retry budget pays for it (the caller withdraws one retry when the hedge is
//!   due; a refused withdrawal means no hedge).
//!
//! While another attempt of the request is in flight, a failed attempt does not start a retry:
//! [`record_racing`] records it and the request waits for the others; only the last one's
//! failure goes through the budgeted retry decision.

use crate::arm::ArmId;
use crate::retry::{AttemptPlan, AttemptRecord, Next, Replay};
use crate::select::SelectContext;

/// Most attempts of one request in flight at once (a Worker may hold six connections open).
pub const MAX_IN_FLIGHT: usize = 6;

/// Whether the router hedges (`HEDGE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HedgeMode {
    /// Hedge when the strategy gives a delay and the request allows it (the default).
    #[default]
    Auto,
    /// Never hedge.
    Off,
}

/// `HEDGE` is neither `auto` nor `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hedge mode {0:?}; valid values: auto, off")]
pub struct InvalidHedgeMode(pub String);

impl std::str::FromStr for HedgeMode {
    type Err = InvalidHedgeMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            Ok(HedgeMode::Auto)
        } else if t.eq_ignore_ascii_case("off") {
            Ok(HedgeMode::Off)
        } else {
            Err(InvalidHedgeMode(s.to_owned()))
        }
    }
}

impl HedgeMode {
    /// The configuration value.
    pub fn name(self) -> &'static str {
        match self {
            HedgeMode::Auto => "auto",
            HedgeMode::Off => "off",
        }
    }
}

/// One attempt of a request still waiting for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub arm: ArmId,
    /// Caller's clock when it was sent, ms.
    pub sent_ms: u64,
    /// Its deadline: sent_ms plus its attempt timeout.
    pub timeout_ms: u64,
    /// Whether it was sent as a hedge.
    pub hedged: bool,
}

/// The downstreams a hedge may not go to: those the plan vetoes and those in flight.
pub fn exclusions(plan: &AttemptPlan, in_flight: &[InFlight]) -> Vec<ArmId> {
    let mut excluded = plan.excluded().to_vec();
    for f in in_flight {
        if !excluded.contains(&f.arm) {
            excluded.push(f.arm);
        }
    }
    excluded
}

/// What a strategy is told when choosing a hedge's downstream at `now_ms` (`excluded` from
/// [`exclusions`]): the attempt number after those in flight, the attempts left after them, no
/// repeat.
pub fn select_context<'a>(
    plan: &AttemptPlan,
    excluded: &'a [ArmId],
    in_flight: usize,
    now_ms: u64,
) -> SelectContext<'a> {
    SelectContext::new(excluded, plan.next_attempt() + in_flight as u32, now_ms)
        .remaining(plan.remaining().saturating_sub(in_flight as u32))
        .elapsed(now_ms.saturating_sub(plan.started_ms().unwrap_or(now_ms)))
}

/// When the next hedge is due (caller's clock, ms), or `None` when none may be sent: see the
/// module documentation for the rules. `delay_ms` is the strategy's hedge delay for the newest
/// attempt's downstream.
pub fn due_ms(
    mode: HedgeMode,
    plan: &AttemptPlan,
    in_flight: &[InFlight],
    delay_ms: Option<f64>,
) -> Option<u64> {
    if mode == HedgeMode::Off || plan.replay_rule() != Replay::Any {
        return None;
    }
    let newest = in_flight.iter().max_by_key(|f| f.sent_ms)?;
    let flights = in_flight.len();
    if flights >= MAX_IN_FLIGHT || plan.remaining() as usize <= flights {
        return None;
    }
    if exclusions(plan, in_flight).len() >= plan.fleet_len() {
        return None;
    }
    let delay = delay_ms.filter(|d| d.is_finite() && *d >= 1.0)?.ceil() as u64;
    let due = newest.sent_ms.saturating_add(delay);
    (due < newest.timeout_ms && due < plan.deadline_ms()).then_some(due)
}

/// Records a finished attempt while `still_in_flight` others of the request are in flight:
/// `Some(Next::Answer)` when its answer goes to the client (a success or a client error),
/// `None` when the request waits for the others. With nothing else in flight the caller records
/// as usual ([`AttemptPlan::record_budgeted`]).
pub fn record_racing(
    plan: &mut AttemptPlan,
    attempt: AttemptRecord,
    now_ms: u64,
    still_in_flight: usize,
) -> Option<Next> {
    debug_assert!(still_in_flight > 0, "record_racing with nothing else in flight");
    (plan.record(attempt, now_ms) == Next::Answer).then_some(Next::Answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use proptest::prelude::*;

    fn flight(arm: ArmId, sent_ms: u64) -> InFlight {
        InFlight { arm, sent_ms, timeout_ms: sent_ms + 1_000, hedged: false }
    }

    fn rec(arm: ArmId, outcome: Outcome, hedged: bool) -> AttemptRecord {
        AttemptRecord { arm, outcome, status: None, latency_ms: 5.0, hedged }
    }

    #[test]
    fn the_mode_parses_and_bad_values_name_the_valid_ones() {
        assert_eq!(" Auto ".parse::<HedgeMode>(), Ok(HedgeMode::Auto));
        assert_eq!("OFF".parse::<HedgeMode>(), Ok(HedgeMode::Off));
        let err = "sometimes".parse::<HedgeMode>().unwrap_err().to_string();
        assert!(err.contains("\"sometimes\"") && err.contains("auto, off"), "{err}");
        assert_eq!(HedgeMode::default(), HedgeMode::Auto);
        assert_eq!(HedgeMode::Off.name(), "off");
    }

    #[test]
    fn a_hedge_is_due_after_the_delay_when_everything_allows_it() {
        let plan = AttemptPlan::new(3, 3, 10_000).started_at(0);
        let f = [flight(0, 100)];
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &f, Some(44.2)), Some(145));
        assert_eq!(due_ms(HedgeMode::Off, &plan, &f, Some(44.2)), None, "off");
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &f, None), None, "no delay learned");
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &f, Some(f64::NAN)), None);
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &f, Some(0.5)), None);
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &[], Some(40.0)), None, "nothing in flight");
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &f, Some(1_000.0)), None, "at the timeout");
        let post = plan.clone().replay(Replay::ConnectErrorOnly);
        assert_eq!(due_ms(HedgeMode::Auto, &post, &f, Some(40.0)), None, "not replayable");
        let near = AttemptPlan::new(3, 3, 130);
        assert_eq!(due_ms(HedgeMode::Auto, &near, &f, Some(40.0)), None, "after the deadline");
    }

    #[test]
    fn hedges_stay_within_the_attempts_the_fleet_and_the_connection_limit() {
        let plan = AttemptPlan::new(2, 3, 10_000);
        let two = [flight(0, 0), flight(1, 50)];
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &two, Some(40.0)), None, "two attempts");
        let plan = AttemptPlan::new(3, 2, 10_000);
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &two, Some(40.0)), None, "no host left");
        let plan = AttemptPlan::new(10, 10, 10_000);
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &two, Some(40.0)), Some(90), "the newest");
        let six: Vec<_> = (0..MAX_IN_FLIGHT).map(|i| flight(i, i as u64)).collect();
        assert_eq!(due_ms(HedgeMode::Auto, &plan, &six, Some(40.0)), None, "six in flight");
        let excluded = exclusions(&plan, &two);
        let ctx = select_context(&plan, &excluded, two.len(), 60);
        assert_eq!((ctx.attempt, ctx.remaining, ctx.previous), (3, 8, None));
        assert!(ctx.is_excluded(0) && ctx.is_excluded(1) && !ctx.is_excluded(2));
    }

    #[test]
    fn a_failure_while_another_attempt_races_waits_and_a_success_answers() {
        let mut plan = AttemptPlan::new(3, 3, 10_000);
        assert_eq!(record_racing(&mut plan, rec(0, Outcome::Timeout, false), 10, 1), None);
        assert_eq!(plan.excluded(), [0]);
        let next = record_racing(&mut plan, rec(1, Outcome::Success, true), 20, 1);
        assert_eq!(next, Some(Next::Answer));
        assert!(plan.succeeded() && plan.attempts()[1].hedged);
        let mut plan = AttemptPlan::new(3, 3, 10_000);
        let next = record_racing(&mut plan, rec(2, Outcome::ClientError, false), 10, 1);
        assert_eq!(next, Some(Next::Answer), "a 4xx is the answer");
    }

    proptest! {
        /// Whatever the plan and the attempts in flight, a hedge is due only within the limits,
        /// after the newest attempt, and before its timeout and the request's deadline; and the
        /// hedge's context never offers a downstream in flight or vetoed.
        #[test]
        fn a_due_hedge_respects_every_limit(
            max_attempts in 1u32..8,
            fleet in 1usize..8,
            deadline in 0u64..5_000,
            sent in proptest::collection::vec((0usize..8, 0u64..3_000, 1u64..2_000), 0..8),
            delay in proptest::option::of(-10.0f64..3_000.0),
        ) {
            let plan = AttemptPlan::new(max_attempts, fleet, deadline);
            let flights: Vec<InFlight> = sent
                .iter()
                .map(|&(arm, t, timeout)| InFlight {
                    arm: arm % fleet,
                    sent_ms: t,
                    timeout_ms: t + timeout,
                    hedged: false,
                })
                .collect();
            if let Some(due) = due_ms(HedgeMode::Auto, &plan, &flights, delay) {
                let newest = flights.iter().max_by_key(|f| f.sent_ms).unwrap();
                prop_assert!(flights.len() < MAX_IN_FLIGHT);
                prop_assert!((flights.len() as u32) < max_attempts);
                prop_assert!(due > newest.sent_ms && due < newest.timeout_ms && due < deadline);
                let excluded = exclusions(&plan, &flights);
                prop_assert!(excluded.len() < fleet);
                let ctx = select_context(&plan, &excluded, flights.len(), due);
                for f in &flights {
                    prop_assert!(ctx.is_excluded(f.arm));
                }
                prop_assert!(ctx.remaining >= 1 && ctx.previous.is_none());
            }
            prop_assert_eq!(due_ms(HedgeMode::Off, &plan, &flights, delay), None);
        }
    }
}
