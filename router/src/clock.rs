//! The router's clock: the one place that reads the time. Everything below it (the core's
//! strategies, the retry plan and budget) takes `now_ms` as an argument.

use worker::Date;

/// Wall clock, milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    Date::now().as_millis()
}
