//! The router's log lines (Workers Logs / `wrangler tail`): lowercase, `key=value` fields.
//!
//! A failing dependency (the REST proxy, the learner) fails on every request; logging each
//! failure would flood the logs and cost CPU on the request path's isolate. Failures are logged
//! sparsely instead: the 1st, 2nd, 4th, 8th, ... of a kind, with the running count, so the log
//! shows that something started failing and how much, at a cost that grows like log2 of the
//! failures. The counters in `/_magnetar/state` have the exact figures.

/// Whether the `n`th failure of a kind is logged (n = 1, 2, 4, 8, ...).
pub fn is_logged(n: u64) -> bool {
    n.is_power_of_two()
}

/// Logs `what` with its running count `n` and a `detail`, when [`is_logged`] says so.
pub fn sparse_warn(what: &str, n: u64, detail: &str) {
    if is_logged(n) {
        if detail.is_empty() {
            worker::console_warn!("{what} count={n}");
        } else {
            worker::console_warn!("{what} count={n} detail={detail:?}");
        }
    }
}

/// Logs an error that needs the operator, every time.
pub fn error(what: &str, detail: &str) {
    worker::console_error!("{what} detail={detail:?}");
}
