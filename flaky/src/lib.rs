//! `magnetar-flaky`: a test origin whose failures are configured, not accidental.
//!
//! The `downstream-worker` crate is a thin Worker around this crate, and the simulator
//! (`magnetar-sim`) imitates it with its [`RateWindow`] and [`OutageCycle`]. Every decision it makes is
//! here, sans-io: time comes in as `now_ms`, randomness as `&mut dyn RngCore`.
//!
//! Modes (names are case-insensitive on input; canonical spellings below):
//!
//! | mode              | behaviour                                                              |
//! |-------------------|------------------------------------------------------------------------|
//! | `All_Success`     | every work request answers 200                                         |
//! | `All_fail`        | every work request answers `FAIL_STATUS` (default 500)                 |
//! | `percentage_fail` | a fresh draw per request fails with probability `PERCENTAGE_FAIL` / 100 |
//! | `rate_limited`    | 200 up to `RATE_LIMIT_RPS` requests per sliding second, then 429       |
//! | `cyclic_outage`   | up `OUTAGE_UP_SECS`, then down `OUTAGE_DOWN_SECS` (503), from the clock |
//!
//! Successes and injected failures wait `PROCESSING_DELAY_MS` plus a uniform
//! `0..=LATENCY_JITTER_MS` first; 429 and 503 rejections answer at once, as a real rate limiter or
//! a down origin would.
//!
//! Configuration comes from the Worker's variables ([`OriginConfig::from_lookup`]) and, when
//! `ALLOW_OVERRIDES` is `true`, from per-request overrides ([`FlakyOverride`]): the
//! `x-flaky-config` header and the `"flaky"` field of a JSON body, header first, body on top. An
//! override is either one object of [`Field`] keys that applies to whoever receives it, or a map
//! from worker name to such an object, where each worker picks its own entry (`"*"` applies to all,
//! under a worker's own entry). Overrides replace only the fields they give.
//!
//! Work requests are counted ([`Stats`]) overall and, when they carry an `x-flaky-tag` header, per
//! tag ([`TagCounts`]), so that interleaved measurements on one fleet each get their own count.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

mod config;
mod decide;
mod overrides;
mod tags;

pub use config::{
    DEFAULT_DELAY_MS, DEFAULT_FAIL_STATUS, DEFAULT_JITTER_MS, DEFAULT_MODE,
    DEFAULT_OUTAGE_DOWN_SECS, DEFAULT_OUTAGE_OFFSET_SECS, DEFAULT_OUTAGE_UP_SECS,
    DEFAULT_PERCENTAGE_FAIL, DEFAULT_RATE_LIMIT_RPS, DEFAULT_WORKER_NAME, FlakyConfig,
    MAX_DELAY_MS, MAX_OUTAGE_SECS, MAX_RATE_LIMIT_RPS, OriginConfig,
};
pub use decide::{
    FlakyState, OutageCycle, OutagePhase, RATE_WINDOW_MS, RateWindow, Stats, Verdict,
};
pub use overrides::{BODY_FIELD, FlakyOverride, OVERRIDE_HEADER, WILDCARD_ENTRY};
pub use tags::{MAX_TAG_LEN, MAX_TAGS, TAG_HEADER, TagCounts, valid_tag};

/// How the downstream behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Mode {
    #[serde(rename = "All_Success")]
    AllSuccess,
    #[serde(rename = "All_fail")]
    AllFail,
    #[serde(rename = "percentage_fail")]
    PercentageFail,
    #[serde(rename = "rate_limited")]
    RateLimited,
    #[serde(rename = "cyclic_outage")]
    CyclicOutage,
}

impl Mode {
    /// Every mode, in a stable order.
    pub const ALL: [Mode; 5] = [
        Mode::AllSuccess,
        Mode::AllFail,
        Mode::PercentageFail,
        Mode::RateLimited,
        Mode::CyclicOutage,
    ];

    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::AllSuccess => "All_Success",
            Mode::AllFail => "All_fail",
            Mode::PercentageFail => "percentage_fail",
            Mode::RateLimited => "rate_limited",
            Mode::CyclicOutage => "cyclic_outage",
        }
    }

    /// Every canonical name, comma-separated.
    pub fn names() -> String {
        Mode::ALL.map(Mode::as_str).join(", ")
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string named no [`Mode`], in any letter case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}, expected one of {names}", names = Mode::names())]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// One setting of [`FlakyConfig`], with its variable name and its override key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Mode,
    PercentageFail,
    DelayMs,
    LatencyJitterMs,
    FailStatus,
    RateLimitRps,
    OutageUpSecs,
    OutageDownSecs,
    OutageOffsetSecs,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::Mode,
        Field::PercentageFail,
        Field::DelayMs,
        Field::LatencyJitterMs,
        Field::FailStatus,
        Field::RateLimitRps,
        Field::OutageUpSecs,
        Field::OutageDownSecs,
        Field::OutageOffsetSecs,
    ];

    /// Name of the Worker variable (wrangler `[vars]`).
    pub fn var(self) -> &'static str {
        match self {
            Field::Mode => "MODE",
            Field::PercentageFail => "PERCENTAGE_FAIL",
            Field::DelayMs => "PROCESSING_DELAY_MS",
            Field::LatencyJitterMs => "LATENCY_JITTER_MS",
            Field::FailStatus => "FAIL_STATUS",
            Field::RateLimitRps => "RATE_LIMIT_RPS",
            Field::OutageUpSecs => "OUTAGE_UP_SECS",
            Field::OutageDownSecs => "OUTAGE_DOWN_SECS",
            Field::OutageOffsetSecs => "OUTAGE_OFFSET_SECS",
        }
    }

    /// Key in an override object and in the `GET /` echo.
    pub fn key(self) -> &'static str {
        match self {
            Field::Mode => "mode",
            Field::PercentageFail => "percentage_fail",
            Field::DelayMs => "delay_ms",
            Field::LatencyJitterMs => "latency_jitter_ms",
            Field::FailStatus => "fail_status",
            Field::RateLimitRps => "rate_limit_rps",
            Field::OutageUpSecs => "outage_up_secs",
            Field::OutageDownSecs => "outage_down_secs",
            Field::OutageOffsetSecs => "outage_offset_secs",
        }
    }

    /// The field whose override key is `key` (exact, lowercase).
    pub fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.key() == key)
    }

    /// Every override key, comma-separated.
    pub fn keys() -> String {
        Field::ALL.map(Field::key).join(", ")
    }

    /// Accepted range of a numeric field, and whether it must be a whole number.
    pub(crate) fn range(self) -> (f64, f64, bool) {
        match self {
            Field::Mode => (0.0, 0.0, true),
            Field::PercentageFail => (0.0, 100.0, false),
            Field::DelayMs | Field::LatencyJitterMs => (0.0, MAX_DELAY_MS as f64, true),
            Field::FailStatus => (500.0, 599.0, true),
            Field::RateLimitRps => (0.0, f64::from(MAX_RATE_LIMIT_RPS), true),
            Field::OutageUpSecs | Field::OutageDownSecs | Field::OutageOffsetSecs => {
                (0.0, MAX_OUTAGE_SECS as f64, true)
            }
        }
    }
}

/// The flaky configuration (variables or an override) was not valid. `field` is a path that
/// names the culprit: a variable (`PERCENTAGE_FAIL`) or an override key
/// (`x-flaky-config.downstream-1.delay_ms`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlakyConfigError {
    #[error("{field}: {source}")]
    UnknownMode { field: String, source: UnknownMode },
    #[error("{field}: expected {expected}, got {given}")]
    WrongType { field: String, expected: &'static str, given: String },
    #[error("{field}: {value} is outside {min}..={max}")]
    OutOfRange { field: String, value: f64, min: f64, max: f64 },
    #[error("{field}: unknown field, expected one of {keys} (or worker names mapping to objects)", keys = Field::keys())]
    UnknownField { field: String },
    #[error("{field}: {problem}")]
    Inconsistent { field: String, problem: &'static str },
    #[error("{origin}: not valid JSON: {message}")]
    Json { origin: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_in_any_case_and_print_canonically() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
            assert_eq!(m.as_str().to_uppercase().parse::<Mode>().unwrap(), m);
            assert_eq!(format!(" {} ", m.as_str().to_lowercase()).parse::<Mode>().unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        let err = "sometimes".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("sometimes") && err.contains("All_Success, All_fail"), "{err}");
    }

    #[test]
    fn field_keys_and_vars_are_distinct() {
        let keys: std::collections::HashSet<_> = Field::ALL.map(Field::key).into();
        let vars: std::collections::HashSet<_> = Field::ALL.map(Field::var).into();
        assert_eq!(keys.len(), Field::ALL.len());
        assert_eq!(vars.len(), Field::ALL.len());
        for f in Field::ALL {
            assert_eq!(Field::from_key(f.key()), Some(f));
        }
    }
}
