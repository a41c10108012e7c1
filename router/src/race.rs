//! The attempts of one request: the first, the retries the [`AttemptPlan`] allows, and the
//! hedges [`magnetar_core::hedge`] decides (`HEDGE=auto`), raced against each other.
//!
//! Every attempt in flight is a future in one `FuturesUnordered`, under its own [`Deadline`];
//! the request waits for the first of them to finish or for the next hedge to fall due
//! (a `Delay`), whichever comes first. The first good answer (or client error) goes to the
//! client, and every attempt still in flight is aborted through its deadline's
//! [`Canceller`](crate::deadline::Canceller), so it frees its connection, and reported to its
//! strategy as abandoned. A failure while another attempt is in flight waits for that one; only
//! the last failure asks the plan (and the retry budget) for a retry.
//!
//! A 429 or 503 with `Retry-After` vetoes its downstream until then
//! ([`magnetar_core::retry_after`]): later attempts, of this request and of others, exclude it.

use std::time::Duration;

use futures_util::future::{Either, LocalBoxFuture, select};
use futures_util::stream::{FuturesUnordered, StreamExt};
use magnetar_core::config::Algo;
use magnetar_core::context::RequestContext;
use magnetar_core::hedge::{self, InFlight};
use magnetar_core::retry::{AttemptPlan, AttemptRecord, Next};
use magnetar_core::strategy::{Feedback, StrategyKind};
use magnetar_core::{Outcome, retry_after};
use worker::{Delay, Env};

use crate::attempt::{self, Answer, AttemptResult, Outgoing};
use crate::choose::{LEARNER_FALLBACK, choose};
use crate::clock::now_ms;
use crate::deadline::{Canceller, Deadline};
use crate::health;
use crate::isolate::Isolate;
use crate::tags::Required;

/// How the attempts of a request ended.
pub struct Raced {
    pub next: Next,
    /// The answer of the attempt that ended the request, when it answered in full.
    pub answer: Option<Answer>,
    /// Whether the learner's fallback chose any attempt.
    pub fell_back: bool,
    /// Hedges sent.
    pub hedges: u32,
}

/// An attempt in flight, besides its future.
struct Flight {
    at: InFlight,
    /// The local strategy that chose it (`None`: the learner did).
    kind: Option<StrategyKind>,
    attempt: u32,
    cancel: Canceller,
}

/// What one attempt's future yields: its index in the flights, its result, when it finished.
type Done = (usize, AttemptResult, u64);

struct Race<'a> {
    env: &'a Env,
    isolate: &'a Isolate,
    route: &'a str,
    algo: Algo,
    out: &'a Outgoing,
    /// Downstreams the request's tags leave out.
    required: &'a Required,
    /// What the edge knows about the request (contextual strategies choose by it).
    request: Option<&'a RequestContext>,
    flights: Vec<Option<Flight>>,
    running: FuturesUnordered<LocalBoxFuture<'a, Done>>,
    fell_back: bool,
    hedges: u32,
}

impl<'a> Race<'a> {
    fn in_flight(&self) -> Vec<InFlight> {
        self.flights.iter().flatten().map(|f| f.at).collect()
    }

    /// Chooses and sends the next attempt (a hedge beside those in flight when `hedged`).
    /// Returns whether one was sent.
    async fn start(&mut self, plan: &AttemptPlan, hedged: bool) -> bool {
        let config = self.isolate.config().clone();
        let now = now_ms();
        let in_flight = self.in_flight();
        let base =
            if hedged { hedge::exclusions(plan, &in_flight) } else { plan.excluded().to_vec() };
        // Tags, then health (never emptying the fleet on its own), then Retry-After vetoes.
        let base = health::veto(self.isolate, &self.required.veto(&base), now);
        let excluded = self.isolate.exclusions(&base, now);
        let ctx = if hedged {
            hedge::select_context(plan, &excluded, in_flight.len(), now).request(self.request)
        } else {
            health::context(plan.select_context(now), &excluded).request(self.request)
        };
        let Some((arm, kind)) = choose(self.isolate, self.route, self.algo, &ctx).await else {
            return false;
        };
        self.fell_back |= matches!(self.algo, Algo::Learner) && kind.is_some();
        let Some(downstream) = config.fleet.get(arm) else { return false };
        // Read after choose(): the wait for the learner's recommendation is neither part of the
        // attempt's latency nor left of the request's deadline.
        let sent = now_ms();
        let hint =
            self.isolate.attempt_deadline_ms(self.route, kind.unwrap_or(LEARNER_FALLBACK), arm);
        let timeout = plan.attempt_timeout_ms(sent, config.attempt_timeout_ms, hint);
        let deadline = Deadline::new(timeout);
        let cancel = deadline.canceller();
        let attempt = ctx.attempt;
        let index = self.flights.len();
        let (env, out) = (self.env, self.out);
        let downstream = downstream.clone();
        self.running.push(Box::pin(async move {
            let result = attempt::send_under(env, &downstream, out, attempt, deadline).await;
            (index, result, now_ms())
        }));
        let at = InFlight { arm, sent_ms: sent, timeout_ms: sent + timeout, hedged };
        self.flights.push(Some(Flight { at, kind, attempt, cancel }));
        self.hedges += u32::from(hedged);
        true
    }

    /// When the next hedge is due, if one may be sent.
    fn hedge_due(&self, plan: &AttemptPlan) -> Option<u64> {
        let in_flight = self.in_flight();
        let newest = self.flights.iter().flatten().max_by_key(|f| f.at.sent_ms)?;
        let kind = newest.kind?;
        let delay = self.isolate.hedge_delay_ms(self.route, kind, newest.at.arm);
        hedge::due_ms(self.isolate.config().hedge, plan, &in_flight, delay)
    }

    /// Aborts every attempt still in flight and tells its strategy.
    fn abandon_the_rest(&mut self) {
        let now = now_ms();
        for f in self.flights.iter_mut().filter_map(Option::take) {
            f.cancel.abort();
            let kind = f.kind.unwrap_or(LEARNER_FALLBACK);
            self.isolate.abandoned(self.route, kind, f.at.arm, f.at.sent_ms, now);
        }
    }
}

/// Classifies an attempt's result: its outcome, status and complete answer.
fn classify(result: AttemptResult) -> (Outcome, Option<u16>, Option<Answer>) {
    match result {
        AttemptResult::Answered(a) => (Outcome::from_status(a.status), Some(a.status), Some(a)),
        AttemptResult::TimedOut => (Outcome::Timeout, None, None),
        AttemptResult::Failed(_) => (Outcome::ConnectError, None, None),
        // The origin had the request and answered, but not in full: a server failure, not a
        // connection error (which would make a POST look safe to retry).
        AttemptResult::BrokenBody(status, _) => (Outcome::ServerError, Some(status), None),
    }
}

/// What one client request asks of its attempts: the outgoing request, the downstreams its tags
/// leave out, and what the edge knows about it.
pub struct Ask<'a> {
    pub out: &'a Outgoing,
    pub required: &'a Required,
    pub context: Option<&'a RequestContext>,
}

/// Runs the attempts of one request under `plan` until an answer goes to the client or the
/// plan gives up.
pub async fn run(
    env: &Env,
    isolate: &Isolate,
    route: &str,
    algo: Algo,
    ask: Ask<'_>,
    plan: &mut AttemptPlan,
) -> Raced {
    let request = ask.context;
    let mut race = Race {
        env,
        isolate,
        route,
        algo,
        out: ask.out,
        required: ask.required,
        request,
        flights: Vec::new(),
        running: FuturesUnordered::new(),
        fell_back: false,
        hedges: 0,
    };
    let mut next = Next::GiveUp;
    let mut answer = None;
    if !race.start(plan, false).await {
        return Raced { next, answer, fell_back: race.fell_back, hedges: 0 };
    }
    let mut hedge_at = race.hedge_due(plan);
    loop {
        let done = match hedge_at {
            None => race.running.next().await,
            Some(due) => {
                let wait = Delay::from(Duration::from_millis(due.saturating_sub(now_ms())));
                match select(race.running.next(), wait).await {
                    Either::Left((done, _)) => done,
                    Either::Right(((), _)) => {
                        // No further hedge when this one is refused or finds no downstream
                        // (its due time would still be past: the loop would spin).
                        hedge_at = None;
                        if isolate.pay_for_hedge(now_ms()) && race.start(plan, true).await {
                            hedge_at = race.hedge_due(plan);
                        }
                        continue;
                    }
                }
            }
        };
        // Nothing in flight any more (cannot happen: the loop ends with the last attempt).
        let Some((index, result, finished)) = done else { break };
        let Some(flight) = race.flights.get_mut(index).and_then(Option::take) else { continue };
        let (outcome, status, reply) = classify(result);
        let (arm, sent) = (flight.at.arm, flight.at.sent_ms);
        if let Some(until) = reply.as_ref().and_then(|a| retry_after_until(a, finished)) {
            isolate.veto(arm, until);
        }
        let latency_ms = finished.saturating_sub(sent) as f64;
        let feedback = Feedback { outcome, latency_ms, now_ms: finished, attempt: flight.attempt };
        // Every attempt teaches the local strategy that chose it; learner-routed attempts teach
        // the fallback so it is ready when the learner is not.
        let kind = flight.kind.unwrap_or(LEARNER_FALLBACK);
        isolate.update_in_context(route, kind, arm, &feedback, request);
        health::observe(isolate, arm, outcome, finished);
        isolate.count(|c| c.attempts += 1);
        let record = AttemptRecord { arm, outcome, status, latency_ms, hedged: flight.at.hedged };
        let others = race.flights.iter().flatten().count();
        if others > 0 {
            if hedge::record_racing(plan, record, finished, others) == Some(Next::Answer) {
                (next, answer) = (Next::Answer, reply);
                break;
            }
            hedge_at = race.hedge_due(plan);
            continue;
        }
        answer = reply;
        next = isolate.record_attempt(plan, record, finished);
        if next != Next::Retry || !race.start(plan, false).await {
            break;
        }
        hedge_at = race.hedge_due(plan);
    }
    race.abandon_the_rest();
    Raced { next, answer, fell_back: race.fell_back, hedges: race.hedges }
}

/// Until when a 429/503 answer's `Retry-After` asks its downstream to be left alone.
fn retry_after_until(answer: &Answer, now_ms: u64) -> Option<u64> {
    if !retry_after::applies(answer.status) {
        return None;
    }
    let value = answer.headers.get(retry_after::HEADER).ok().flatten()?;
    retry_after::parse(&value, now_ms).ok().filter(|until| *until > now_ms)
}
