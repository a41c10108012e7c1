//! A retry budget: retries may be at most a percentage of requests, plus a small minimum per
//! second, so that retries cannot storm a failing fleet.
//!
//! The design of Finagle's `RetryBudget` and of tower's `retry::budget::TpsBudget` (which
//! linkerd2-proxy uses): every client request *deposits* `retry_percent` of a token, every retry
//! *withdraws* one token, and deposits expire after `ttl`, so the budget follows the recent request
//! rate. On top, a reserve of `min_per_sec * ttl` tokens lets a quiet service retry at least
//! `min_per_sec` times per second (withdrawals expire too, so the reserve refills). When a
//! withdrawal would leave the balance negative the retry is refused and the request gives up
//! with the answer it has.
//!
//! Defaults are Finagle's and Linkerd's: [`DEFAULT_RETRY_PERCENT`] = 20%,
//! [`DEFAULT_MIN_PER_SEC`] = 10, [`DEFAULT_TTL_MS`] = 10 s. The ttl is clamped to 1..=60 s (as
//! both enforce). Sans-io: time comes in as `now_ms`; a clock that goes backwards is read as no
//! time passing.
//!
//! Accounting is in fixed point, [`TOKEN`] units per token, so any percentage is exact to 0.1%
//! (tower truncates `1 / percent` to an integer, making 30% act as 33%). Deposits and withdrawals
//! land in the current of [`SLOTS`] time slots of `ttl / SLOTS` each; a slot is cleared when the
//! clock comes back round to it, so an entry lives between `ttl * (SLOTS - 1) / SLOTS` and `ttl`.

/// Share of requests that may be retried.
pub const DEFAULT_RETRY_PERCENT: f64 = 0.2;
/// Retries per second always allowed.
pub const DEFAULT_MIN_PER_SEC: u32 = 10;
/// How long deposits and withdrawals count.
pub const DEFAULT_TTL_MS: u64 = 10_000;
/// Time slots the ttl is divided into.
pub const SLOTS: usize = 10;
/// Fixed-point units per token.
pub const TOKEN: i64 = 1_000;

/// The budget's settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryBudgetConfig {
    /// Retries per request, e.g. 0.2 = one retry per five requests. Clamped to `0..=1000`.
    pub retry_percent: f64,
    /// Retries per second allowed whatever the request rate.
    pub min_per_sec: u32,
    /// How long a deposit or withdrawal counts, ms (clamped to 1..=60 s).
    pub ttl_ms: u64,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            retry_percent: DEFAULT_RETRY_PERCENT,
            min_per_sec: DEFAULT_MIN_PER_SEC,
            ttl_ms: DEFAULT_TTL_MS,
        }
    }
}

/// A token bucket of retries with expiring entries.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    slots: [i64; SLOTS],
    /// Index of the current slot period (`now_ms / slot_ms`).
    epoch: u64,
    slot_ms: u64,
    deposit: i64,
    reserve: i64,
}

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig) -> Self {
        let ttl_ms = config.ttl_ms.clamp(1_000, 60_000);
        let percent = if config.retry_percent.is_finite() {
            config.retry_percent.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        RetryBudget {
            slots: [0; SLOTS],
            epoch: 0,
            slot_ms: ttl_ms / SLOTS as u64,
            deposit: (percent * TOKEN as f64).round() as i64,
            reserve: i64::from(config.min_per_sec) * (ttl_ms as i64 / 1_000) * TOKEN,
        }
    }

    /// Clears the slots the clock has moved past since the last call.
    fn advance(&mut self, now_ms: u64) {
        let epoch = now_ms / self.slot_ms;
        if epoch <= self.epoch {
            return;
        }
        let passed = (epoch - self.epoch).min(SLOTS as u64);
        for k in 1..=passed {
            self.slots[((self.epoch + k) % SLOTS as u64) as usize] = 0;
        }
        self.epoch = epoch;
    }

    fn current(&mut self) -> &mut i64 {
        &mut self.slots[(self.epoch % SLOTS as u64) as usize]
    }

    /// Records one client request.
    pub fn deposit(&mut self, now_ms: u64) {
        self.advance(now_ms);
        let deposit = self.deposit;
        let slot = self.current();
        *slot = slot.saturating_add(deposit);
    }

    /// Takes one retry from the budget; false (and nothing taken) when it is spent.
    pub fn try_withdraw(&mut self, now_ms: u64) -> bool {
        if self.balance(now_ms) < TOKEN {
            return false;
        }
        let slot = self.current();
        *slot = slot.saturating_sub(TOKEN);
        true
    }

    /// Tokens available at `now_ms`, in [`TOKEN`] units (never negative).
    pub fn balance(&mut self, now_ms: u64) -> i64 {
        self.advance(now_ms);
        let sum = self.slots.iter().fold(0i64, |acc, s| acc.saturating_add(*s));
        sum.saturating_add(self.reserve).max(0)
    }

    /// Whole retries available at `now_ms`.
    pub fn retries_left(&mut self, now_ms: u64) -> u64 {
        (self.balance(now_ms) / TOKEN) as u64
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(RetryBudgetConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(percent: f64, min_per_sec: u32) -> RetryBudget {
        RetryBudget::new(RetryBudgetConfig { retry_percent: percent, min_per_sec, ttl_ms: 10_000 })
    }

    #[test]
    fn retries_are_a_share_of_requests() {
        let mut b = budget(0.2, 0);
        assert!(!b.try_withdraw(0));
        for _ in 0..100 {
            b.deposit(0);
        }
        let granted = (0..50).filter(|_| b.try_withdraw(0)).count();
        assert_eq!(granted, 20);
        // A percentage tower would truncate (1/0.3 = 3) stays exact here.
        let mut b = budget(0.3, 0);
        (0..100).for_each(|_| b.deposit(0));
        assert_eq!((0..50).filter(|_| b.try_withdraw(0)).count(), 30);
    }

    #[test]
    fn the_reserve_allows_a_minimum_rate_and_refills() {
        let mut b = budget(0.0, 10);
        assert_eq!(b.retries_left(0), 100); // 10/s over a 10 s ttl
        assert_eq!((0..150).filter(|_| b.try_withdraw(0)).count(), 100);
        assert!(!b.try_withdraw(5_000));
        // The withdrawals expire with their slot: the reserve is back after the ttl.
        assert_eq!(b.retries_left(10_000), 100);
    }

    #[test]
    fn deposits_expire_after_the_ttl() {
        let mut b = budget(1.0, 0);
        for t in 0..10 {
            b.deposit(t * 1_000);
        }
        assert_eq!(b.retries_left(9_999), 10);
        assert_eq!(b.retries_left(10_000), 9);
        assert_eq!(b.retries_left(15_500), 4);
        assert_eq!(b.retries_left(1_000_000), 0);
        // The clock going backwards neither expires nor restores anything.
        assert_eq!(b.retries_left(3_000), 0);
    }

    #[test]
    fn settings_are_clamped() {
        let mut b = RetryBudget::new(RetryBudgetConfig {
            retry_percent: f64::NAN,
            min_per_sec: 1,
            ttl_ms: 0,
        });
        assert_eq!(b.retries_left(0), 1); // ttl clamped to 1 s: reserve of 1
        b.deposit(0);
        assert_eq!(b.retries_left(0), 1);
    }
}
