//! Liveness of the Kafka consumer task, as `GET /healthz` and `/metrics` report it.
//!
//! The consumer loop beats at every turn: every message, every consumer error, and every
//! commit tick (so an idle topic still beats once per commit interval). `/healthz` says:
//!
//! - `down` (HTTP 503): the task has stopped (it ended or panicked before shutdown), or has not
//!   beaten for `stale_after` (it is stuck);
//! - `degraded` (HTTP 200): the consumer's last poll returned an error, no message arrived since,
//!   and that error is recent (within `stale_after`): typically the brokers are unreachable. The
//!   learner still serves what it learned;
//! - `ok` (HTTP 200) otherwise.
//!
//! Ages are milliseconds before the report, `null` when the event has not happened yet.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// A consumer that has not beaten for this long is reported down, unless the commit interval
/// asks for more ([`ConsumerHealth::for_commit_interval`]).
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(15);

/// Shared between the consumer task (writer) and the HTTP handlers (readers).
#[derive(Debug)]
pub struct ConsumerHealth {
    running: AtomicBool,
    heartbeat_ms: AtomicU64,
    last_message_ms: AtomicU64,
    last_error_ms: AtomicU64,
    stale_after_ms: u64,
}

/// What `/healthz` shows of the consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerReport {
    pub status: &'static str,
    pub running: bool,
    pub last_poll_age_ms: Option<u64>,
    pub last_message_age_ms: Option<u64>,
    pub last_error_age_ms: Option<u64>,
    pub stale_after_ms: u64,
}

impl ConsumerReport {
    /// False when `/healthz` must answer 503.
    pub fn is_up(&self) -> bool {
        self.status != "down"
    }
}

impl ConsumerHealth {
    pub fn new(stale_after: Duration) -> Self {
        ConsumerHealth {
            running: AtomicBool::new(false),
            heartbeat_ms: AtomicU64::new(0),
            last_message_ms: AtomicU64::new(0),
            last_error_ms: AtomicU64::new(0),
            stale_after_ms: stale_after.as_millis() as u64,
        }
    }

    /// Stale after five commit intervals, and never sooner than [`MIN_STALE_AFTER`].
    pub fn for_commit_interval(commit_interval: Duration) -> Self {
        ConsumerHealth::new((commit_interval * 5).max(MIN_STALE_AFTER))
    }

    pub fn started(&self, now_ms: u64) {
        self.heartbeat_ms.store(now_ms, Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    pub fn stopped(&self) {
        self.running.store(false, Ordering::Release);
    }

    pub fn beat(&self, now_ms: u64) {
        self.heartbeat_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn message(&self, now_ms: u64) {
        self.beat(now_ms);
        self.last_message_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn error(&self, now_ms: u64) {
        self.beat(now_ms);
        self.last_error_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn report(&self, now_ms: u64) -> ConsumerReport {
        let age = |at: &AtomicU64| match at.load(Ordering::Relaxed) {
            0 => None,
            t => Some(now_ms.saturating_sub(t)),
        };
        let running = self.running.load(Ordering::Acquire);
        let (poll, message, error) =
            (age(&self.heartbeat_ms), age(&self.last_message_ms), age(&self.last_error_ms));
        let stale = poll.is_none_or(|a| a > self.stale_after_ms);
        let failing = match (error, message) {
            (Some(e), Some(m)) => e < m && e <= self.stale_after_ms,
            (Some(e), None) => e <= self.stale_after_ms,
            (None, _) => false,
        };
        let status = if !running || stale {
            "down"
        } else if failing {
            "degraded"
        } else {
            "ok"
        };
        ConsumerReport {
            status,
            running,
            last_poll_age_ms: poll,
            last_message_age_ms: message,
            last_error_age_ms: error,
            stale_after_ms: self.stale_after_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_is_down_until_started_and_after_it_stops() {
        let h = ConsumerHealth::new(Duration::from_secs(10));
        assert_eq!(h.report(1_000).status, "down");
        h.started(1_000);
        let r = h.report(1_500);
        assert_eq!((r.status, r.last_poll_age_ms, r.last_message_age_ms), ("ok", Some(500), None));
        h.stopped();
        assert!(!h.report(1_500).is_up());
    }

    #[test]
    fn a_consumer_that_stops_beating_is_down() {
        let h = ConsumerHealth::new(Duration::from_secs(10));
        h.started(1_000);
        h.beat(5_000);
        assert_eq!(h.report(15_000).status, "ok");
        assert_eq!(h.report(15_001).status, "down");
        // A late, out-of-order beat does not move the heartbeat back.
        h.beat(2_000);
        assert_eq!(h.report(15_001).last_poll_age_ms, Some(10_001));
    }

    #[test]
    fn recent_errors_without_messages_degrade() {
        let h = ConsumerHealth::new(Duration::from_secs(10));
        h.started(1_000);
        h.error(2_000);
        assert_eq!(h.report(3_000).status, "degraded");
        h.message(4_000);
        assert_eq!(h.report(5_000).status, "ok");
        h.error(6_000);
        assert_eq!(h.report(7_000).status, "degraded");
        // An old error with beats since is no longer news.
        h.beat(20_000);
        assert_eq!(h.report(20_000).status, "ok");
        assert_eq!(h.report(20_000).last_error_age_ms, Some(14_000));
    }

    #[test]
    fn stale_after_follows_the_commit_interval() {
        let short = ConsumerHealth::for_commit_interval(Duration::from_millis(300));
        assert_eq!(short.report(0).stale_after_ms, 15_000);
        let long = ConsumerHealth::for_commit_interval(Duration::from_secs(10));
        assert_eq!(long.report(0).stale_after_ms, 50_000);
    }
}
