//! What the 429-aware strategies know about each downstream's rate limit: learned limits,
//! pacing, rests. Shared by [`thompson_masked`](super::thompson_masked) (V6),
//! [`thompson_window`](super::thompson_window) (V7) and [`blocking_bandit`](super::blocking_bandit)
//! (V8); not a strategy itself.
//!
//! A 429 says the downstream is healthy but over its limit. The seed's answer, resting it for a
//! while after each 429, is not enough on its own: whatever the rest, the downstream gets the
//! router's full traffic again when it ends, fills its limit and answers 429 again, so every
//! capped downstream costs at least one lost attempt per rate window; a rest longer than the
//! time to the next free slot also leaves capacity idle. On the simulator's `rate_limited` fleet
//! (two downstreams allowing 40 attempts in any 1 s, a third uncapped, 100 requests/s) none of
//! the rests tried, fixed from 0.1 to 1 s or backed off from 50 to 500 ms, reached round robin's
//! success with one attempt (best 93.58% against 93.64%) or its regret with three (best 1,459
//! against 1,101): round robin happens to stay under both limits.
//!
//! So a [`RateLimits`] learns each downstream's limit as the router sees it, like a client-side
//! rate limiter mirroring the server's:
//! - it logs when each attempt was sent to each downstream, over the last rate window
//!   ([`DEFAULT_RATE_WINDOW_MS`], 1 s, the most common unit of a rate limit);
//! - a 429 sets the downstream's learned limit to the attempts the log holds in the window that
//!   ends when the refused attempt was sent (a limiter does not count what it refuses, so neither
//!   does the log), at least 1;
//! - a downstream with a learned limit is *paced*: skipped while the log holds that many
//!   attempts, so that it gets traffic again exactly when its oldest attempt leaves the window;
//!   neither sooner (another 429) nor later (idle capacity);
//! - a learned limit is forgotten [`LIMIT_TTL_MS`] (30 s) after its last 429, so a downstream
//!   whose limit was raised, or whose other clients left, gets its traffic back; relearning costs
//!   one 429;
//! - while the router retries (it asked for a retry in the last [`RETRY_MEMORY_MS`], 10 s), first
//!   attempts leave part of each learned limit to retries: a fleet whose best downstreams are
//!   all paced to the last slot by first attempts has nowhere to retry, and a retry that finds
//!   every remaining downstream at its limit is a lost request. The headroom is
//!   `1 / RETRY_HEADROOM_DIVISOR` (1/16) of the limit, rounded up, plus one slot per retry
//!   answered 429, less one slot per [`HEADROOM_NARROW_MS`] (3 s) without such a retry, so that
//!   it follows the retry traffic of an overloaded fleet. Without retries nothing is held back.
//!   This trades regret for success: a first attempt sent to a worse downstream while a better
//!   one keeps a slot free is regret by the oracle's measure, and the slot pays off only when a
//!   retry uses it;
//! - on top of that the strategy rests the downstream after each 429 for a time of its own choosing
//!   (V6 and V7 a fixed cooldown, V8 an exponential backoff). That is the guard for limits the log
//!   cannot see: a window longer than the log's ("N per minute"), or capacity taken by other
//!   clients, where pacing alone would probe once per window.
//!
//! When every allowed downstream is resting or paced, the one that becomes available first is
//! chosen: a strategy never refuses to choose while an arm is allowed.
//!
//! A `Retry-After` would tell the rest exactly, but [`Feedback`] does not carry one: the router
//! classifies the answer into an [`Outcome`](crate::Outcome) and passes no header on, so there is
//! no hint to honour here.
//!
//! All of this is local to one router instance and is not part of the
//! [`PosteriorSnapshot`](super::PosteriorSnapshot): another instance's 429s say nothing about this
//! one's share of a limit. At most [`MAX_LOGGED`] attempts per downstream are logged; a downstream
//! taking more than that per window is paced at that many.

use std::collections::VecDeque;

use super::beta::Draw;
use super::thompson::best_draw;
use super::{ArmId, Feedback, SelectContext};

/// The window over which attempts are counted against a learned limit.
pub const DEFAULT_RATE_WINDOW_MS: u64 = 1_000;
/// A learned limit is forgotten this long after its last 429.
pub const LIMIT_TTL_MS: u64 = 30_000;
/// Headroom for retries is kept while a retry was asked for within this time.
pub const RETRY_MEMORY_MS: u64 = 10_000;
/// First attempts leave `ceil(limit / RETRY_HEADROOM_DIVISOR)` of a learned limit to retries.
pub const RETRY_HEADROOM_DIVISOR: usize = 16;
/// Most attempts logged per downstream.
pub const MAX_LOGGED: usize = 4_096;
/// The headroom narrows by one slot after this long without a retry answered 429.
pub const HEADROOM_NARROW_MS: u64 = 3_000;

#[derive(Clone, Debug, Default)]
struct ArmLimit {
    /// Send times of the attempts of the last window (not the ones answered 429), oldest first.
    sent: VecDeque<u64>,
    /// Attempts per window the downstream accepted before its last 429.
    limit: Option<usize>,
    /// When the last 429 arrived.
    limited_ms: u64,
    /// No attempt before this time.
    resting_until: u64,
}

/// Per-downstream rate-limit state of one router instance.
#[derive(Clone, Debug)]
pub struct RateLimits {
    arms: Vec<ArmLimit>,
    window_ms: u64,
    last_retry_ms: Option<u64>,
    /// Whether the selection being prepared is a first attempt made while the router retries.
    headroom: bool,
    /// Slots added to the headroom by retries answered 429.
    widened: usize,
    /// When `widened` last changed.
    widened_ms: u64,
}

/// Drops the send times that have left the window ending at `now_ms`.
fn trim(sent: &mut VecDeque<u64>, now_ms: u64, window_ms: u64) {
    while sent.front().is_some_and(|t| t.saturating_add(window_ms) <= now_ms) {
        sent.pop_front();
    }
}

impl RateLimits {
    pub fn new(arms: usize) -> Self {
        RateLimits {
            arms: vec![ArmLimit::default(); arms],
            window_ms: DEFAULT_RATE_WINDOW_MS,
            last_retry_ms: None,
            headroom: false,
            widened: 0,
            widened_ms: 0,
        }
    }

    /// Overrides the rate window (at least 1 ms).
    pub fn window(mut self, window_ms: u64) -> Self {
        self.window_ms = window_ms.max(1);
        self
    }

    /// One paced choice: the allowed arm with the highest `draw` among those neither resting nor
    /// at their learned limit, else the one that becomes available first; the choice is logged
    /// as sent. `draw` is asked only for available arms.
    pub fn choose(
        &mut self,
        ctx: &SelectContext<'_>,
        arms: usize,
        mut draw: impl FnMut(ArmId) -> Draw,
    ) -> Option<ArmId> {
        self.prepare(ctx);
        let arm = best_draw(ctx, arms, |a| self.available(a, ctx.now_ms).then(|| draw(a)))
            .or_else(|| self.soonest(ctx))?;
        self.sent(arm, ctx.now_ms);
        Some(arm)
    }

    /// Brings the state to the time of `ctx`, before a selection: expires old limits and old log
    /// entries, and notes whether this choice must leave headroom to retries.
    pub fn prepare(&mut self, ctx: &SelectContext<'_>) {
        let now = ctx.now_ms;
        if ctx.attempt > 1 {
            self.last_retry_ms = Some(now);
        }
        let retrying = self.last_retry_ms.is_some_and(|t| now < t.saturating_add(RETRY_MEMORY_MS));
        self.headroom = ctx.attempt <= 1 && retrying;
        if self.widened > 0 && now >= self.widened_ms.saturating_add(HEADROOM_NARROW_MS) {
            self.widened -= 1;
            self.widened_ms = now;
        }
        for arm in &mut self.arms {
            if arm.limit.is_some() {
                if now >= arm.limited_ms.saturating_add(LIMIT_TTL_MS) {
                    arm.limit = None;
                } else {
                    trim(&mut arm.sent, now, self.window_ms);
                }
            }
        }
    }

    /// How many logged attempts `arm` may hold for the selection being prepared.
    #[inline]
    fn allowance(&self, limit: usize) -> usize {
        if self.headroom {
            let keep = limit.div_ceil(RETRY_HEADROOM_DIVISOR).saturating_add(self.widened);
            limit.saturating_sub(keep).max(1)
        } else {
            limit
        }
    }

    /// Whether `arm` may take the attempt being chosen at `now_ms` (call [`prepare`] first):
    /// it is not resting and is below its learned limit, if any.
    ///
    /// [`prepare`]: RateLimits::prepare
    #[inline]
    pub fn available(&self, arm: ArmId, now_ms: u64) -> bool {
        let a = &self.arms[arm];
        now_ms >= a.resting_until && a.limit.is_none_or(|l| a.sent.len() < self.allowance(l))
    }

    /// When `arm` becomes available, as far as the state prepared for now tells.
    fn available_at(&self, arm: ArmId) -> u64 {
        let a = &self.arms[arm];
        let paced = a.limit.map(|l| self.allowance(l)).and_then(|allowed| {
            // Below `allowed` once the entry at `len - allowed` has left the window.
            let i = a.sent.len().checked_sub(allowed)?;
            a.sent.get(i).map(|t| t.saturating_add(self.window_ms))
        });
        a.resting_until.max(paced.unwrap_or(0))
    }

    /// Among the allowed arms, the one available first (ties to the lower index): the choice when
    /// every allowed arm is resting or paced. `None` only when every arm is excluded.
    pub fn soonest(&self, ctx: &SelectContext<'_>) -> Option<ArmId> {
        (0..self.arms.len()).filter(|a| !ctx.is_excluded(*a)).min_by_key(|a| self.available_at(*a))
    }

    /// Logs an attempt sent to `arm` at `now_ms`.
    pub fn sent(&mut self, arm: ArmId, now_ms: u64) {
        let Some(a) = self.arms.get_mut(arm) else { return };
        trim(&mut a.sent, now_ms, self.window_ms);
        if a.sent.len() >= MAX_LOGGED {
            a.sent.pop_front();
        }
        a.sent.push_back(now_ms);
    }

    /// Learns from a 429 on `arm` and rests it for `rest_ms` from the answer. A 429 answered to
    /// a retry also widens the retry headroom by one slot.
    pub fn rate_limited(&mut self, arm: ArmId, feedback: &Feedback, rest_ms: u64) {
        let window = self.window_ms;
        let Some(a) = self.arms.get_mut(arm) else { return };
        let now = feedback.now_ms;
        if feedback.attempt > 1 {
            // A retry found no room: first attempts must leave more.
            self.widened = self.widened.saturating_add(1);
            self.widened_ms = now;
        }
        let latency = feedback.latency_ms;
        // `as` saturates; a latency that is not a finite positive number reads as 0.
        let latency = if latency.is_finite() && latency > 0.0 { latency as u64 } else { 0 };
        let sent_at = now.saturating_sub(latency);
        // The refused attempt: the last one sent no later than `sent_at`.
        if let Some(i) = a.sent.iter().rposition(|t| *t <= sent_at) {
            a.sent.remove(i);
        }
        let accepted =
            a.sent.iter().filter(|t| **t <= sent_at && t.saturating_add(window) > sent_at).count();
        a.limit = Some(accepted.max(1));
        a.limited_ms = now;
        a.resting_until = a.resting_until.max(now.saturating_add(rest_ms));
    }

    /// Whether `arm` is resting at `now_ms` (pacing aside).
    pub fn resting(&self, arm: ArmId, now_ms: u64) -> bool {
        self.arms.get(arm).is_some_and(|a| now_ms < a.resting_until)
    }

    /// When `arm`'s rest ends (0 if it never rested).
    pub fn resting_until(&self, arm: ArmId) -> u64 {
        self.arms.get(arm).map_or(0, |a| a.resting_until)
    }

    /// The learned limit of `arm` (attempts per window), if a 429 taught one.
    pub fn limit(&self, arm: ArmId) -> Option<usize> {
        self.arms.get(arm).and_then(|a| a.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn first(now_ms: u64) -> SelectContext<'static> {
        SelectContext::first(now_ms)
    }

    fn limited(now_ms: u64) -> Feedback {
        Feedback { outcome: Outcome::RateLimited, latency_ms: 1.0, now_ms, attempt: 1 }
    }

    #[test]
    fn a_429_teaches_the_limit_and_the_arm_is_paced_until_a_slot_frees() {
        let mut r = RateLimits::new(2);
        // Three attempts accepted at 0, 100, 200 ms; the fourth, sent at 300, is refused.
        for t in [0, 100, 200, 300] {
            r.prepare(&first(t));
            assert!(r.available(0, t));
            r.sent(0, t);
        }
        r.rate_limited(0, &limited(301), 0);
        assert_eq!(r.limit(0), Some(3));
        r.prepare(&first(999));
        assert!(!r.available(0, 999), "three attempts still in the window");
        assert_eq!(r.soonest(&first(999)), Some(1));
        // The attempt of 0 ms leaves the window at 1,000 ms: one slot.
        r.prepare(&first(1_000));
        assert!(r.available(0, 1_000));
        r.sent(0, 1_000);
        r.prepare(&first(1_050));
        assert!(!r.available(0, 1_050));
        // Every arm excluded but 0: it is still chosen, as the one free first.
        let ctx = SelectContext::new(&[1], 2, 1_050);
        assert_eq!(r.soonest(&ctx), Some(0));
    }

    #[test]
    fn the_limit_counts_only_the_window_before_the_refused_attempt() {
        let mut r = RateLimits::new(1);
        for t in [0, 500, 1_200, 1_300, 1_400] {
            r.sent(0, t);
        }
        // The attempt sent at 1,300 (answered at 1,340) was refused; 1,400 is still in flight and
        // 0 had left the window. Accepted in (300, 1,300]: 500 and 1,200.
        let f =
            Feedback { outcome: Outcome::RateLimited, latency_ms: 40.0, now_ms: 1_340, attempt: 1 };
        r.rate_limited(0, &f, 0);
        assert_eq!(r.limit(0), Some(2));
    }

    #[test]
    fn rests_add_to_pacing_and_limits_expire() {
        let mut r = RateLimits::new(2);
        r.sent(0, 0);
        r.rate_limited(0, &limited(10), 500);
        assert_eq!(r.limit(0), Some(1), "an empty log still teaches a limit of 1");
        assert!(r.resting(0, 509) && !r.resting(0, 510));
        r.prepare(&first(400));
        assert!(!r.available(0, 400));
        r.prepare(&first(600));
        assert!(r.available(0, 600), "rest over, log empty");
        // Both arms out: arm 1 rests until 700, arm 0 is paced until its attempt of 650 leaves.
        r.sent(0, 650);
        r.rate_limited(1, &limited(200), 500);
        r.prepare(&first(660));
        assert!(!r.available(0, 660) && !r.available(1, 660));
        assert_eq!(r.soonest(&first(660)), Some(1));
        // Thirty seconds after the last 429 the limit is forgotten.
        r.prepare(&first(10 + LIMIT_TTL_MS));
        assert_eq!(r.limit(0), None);
    }

    #[test]
    fn first_attempts_leave_headroom_only_while_the_router_retries() {
        let mut r = RateLimits::new(1);
        // 32 attempts accepted at 0..32 ms, the 33rd refused.
        for t in 0..=32 {
            r.sent(0, t);
        }
        r.rate_limited(0, &limited(40), 0);
        assert_eq!(r.limit(0), Some(32));
        // Free slots appear as the attempts of 0, 1, ... leave the window.
        r.prepare(&first(1_000));
        assert!(r.available(0, 1_000), "no retry seen: the whole limit is for first attempts");
        let retry = SelectContext::new(&[], 2, 1_000);
        r.prepare(&retry);
        assert!(r.available(0, 1_000));
        // Now retrying: first attempts keep ceil(32 / 16) = 2 slots free, retries may use them.
        r.prepare(&first(1_001));
        assert!(!r.available(0, 1_001), "30 logged, 32 - 2 allowed");
        r.prepare(&SelectContext::new(&[], 3, 1_001));
        assert!(r.available(0, 1_001));
        r.prepare(&first(1_002));
        assert!(r.available(0, 1_002), "29 logged");
        // Ten seconds after the last retry the headroom is released.
        let later = 1_001 + RETRY_MEMORY_MS;
        for t in 0..31 {
            r.sent(0, later + t);
        }
        r.prepare(&first(later + 31));
        assert!(r.available(0, later + 31), "31 logged, 32 allowed");
    }

    #[test]
    fn retries_answered_429_widen_the_headroom_until_it_narrows_again() {
        let mut r = RateLimits::new(2);
        for t in 0..=16 {
            r.sent(0, t);
        }
        r.rate_limited(0, &limited(18), 0);
        assert_eq!(r.limit(0), Some(16));
        // Two retries answered 429 on arm 1: headroom 1 (16 / 16) + 2.
        let retry_429 = |now_ms| Feedback {
            outcome: Outcome::RateLimited,
            latency_ms: 1.0,
            now_ms,
            attempt: 2,
        };
        r.prepare(&SelectContext::new(&[], 2, 30));
        r.rate_limited(1, &retry_429(31), 0);
        r.rate_limited(1, &retry_429(32), 0);
        // Logged: the accepted 0..16. At 1,002 those of 0..=2 have left the window: 13 logged,
        // 16 - 3 allowed.
        r.prepare(&first(1_002));
        assert!(!r.available(0, 1_002), "13 logged, 13 allowed");
        r.prepare(&first(1_003));
        assert!(r.available(0, 1_003), "12 logged");
        // Three seconds without another retry 429: one slot narrower.
        let later = 32 + HEADROOM_NARROW_MS;
        for t in 0..13 {
            r.sent(0, later + t);
        }
        r.prepare(&first(later + 13));
        assert!(r.available(0, later + 13), "13 logged, 16 - 2 allowed");
    }

    #[test]
    fn odd_clocks_and_latencies_never_panic() {
        let mut r = RateLimits::new(2);
        for (now, latency) in
            [(u64::MAX, f64::NAN), (0, f64::INFINITY), (5, -3.0), (u64::MAX, 1e300)]
        {
            r.prepare(&first(now));
            r.sent(0, now);
            let f = Feedback {
                outcome: Outcome::RateLimited,
                latency_ms: latency,
                now_ms: now,
                attempt: 1,
            };
            r.rate_limited(0, &f, u64::MAX);
            r.rate_limited(7, &f, 1);
            let _ = r.soonest(&first(now));
        }
        assert!(r.resting(0, u64::MAX - 1));
    }
}
