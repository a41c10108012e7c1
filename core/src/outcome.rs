//! Classification of one attempt's raw result.
//!
//! The edge (router) turns every HTTP status, timeout or connection error into an [`Outcome`]
//! exactly once; strategies, metrics and the learner only ever see this enum.
//!
//! One definition of success, used everywhere (router, learner, simulator, lab, test-bed):
//! an attempt **succeeds** when the downstream answered with a status below 500 other than 429.
//! A 4xx other than 429 is the client's fault, not the downstream's: it is returned to the client
//! unchanged, not retried, and counts as the downstream having done its job. A request succeeds
//! when its final attempt succeeded.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What happened to one attempt, as far as routing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 1xx/2xx/3xx.
    Success,
    /// 4xx other than 429: the downstream worked, the request was bad. Not retried.
    ClientError,
    /// 5xx.
    ServerError,
    /// 429 Too Many Requests: the downstream is healthy but saturated.
    RateLimited,
    /// No answer before the per-attempt deadline.
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS) before any status arrived.
    ConnectError,
}

impl Outcome {
    /// Every variant, in a stable order (used by metrics and property tests).
    pub const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::RateLimited,
        Outcome::Timeout,
        Outcome::ConnectError,
    ];

    /// Classifies an HTTP status code the downstream answered with.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            429 => Outcome::RateLimited,
            500..=599 => Outcome::ServerError,
            400..=499 => Outcome::ClientError,
            _ => Outcome::Success,
        }
    }

    /// Whether the attempt counts as a success (see the module docs for the one definition).
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Success | Outcome::ClientError)
    }

    /// Whether the router may try another downstream after this outcome.
    /// Only 5xx, 429, timeouts and connection errors are retried.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Outcome::ServerError | Outcome::RateLimited | Outcome::Timeout | Outcome::ConnectError
        )
    }

    /// The Bernoulli reward a bandit learns from: 1 for success, 0 otherwise.
    pub fn reward(self) -> f64 {
        if self.is_success() { 1.0 } else { 0.0 }
    }

    /// Stable wire name (snake_case), as in telemetry and JSON bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::RateLimited => "rate_limited",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string did not name an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_once_and_consistently() {
        assert_eq!(Outcome::from_status(200), Outcome::Success);
        assert_eq!(Outcome::from_status(302), Outcome::Success);
        assert_eq!(Outcome::from_status(404), Outcome::ClientError);
        assert_eq!(Outcome::from_status(429), Outcome::RateLimited);
        assert_eq!(Outcome::from_status(500), Outcome::ServerError);
        assert_eq!(Outcome::from_status(503), Outcome::ServerError);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let retried: Vec<_> = Outcome::ALL.into_iter().filter(|o| o.is_retryable()).collect();
        assert_eq!(
            retried,
            [Outcome::ServerError, Outcome::RateLimited, Outcome::Timeout, Outcome::ConnectError]
        );
        assert!(Outcome::ALL.into_iter().all(|o| o.is_success() != o.is_retryable()));
    }

    #[test]
    fn wire_names_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
        }
        assert!("boom".parse::<Outcome>().is_err());
    }
}
