//! The learner's clock: the one place that reads the wall clock. Everything below it (the
//! state, the checkpoint, the offsets) takes the time as an argument (`now_ms`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is set before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
