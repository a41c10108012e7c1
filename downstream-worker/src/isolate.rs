//! State that lives as long as one Worker isolate: the counters and rate window
//! ([`FlakyState`]) and the RNG. Workers run one isolate per thread, so both sit in
//! `thread_local` `RefCell`s, borrowed only for the synchronous decision, never across an `.await`.

use std::cell::RefCell;

use magnetar_core::flaky::{FlakyConfig, FlakyState, Stats, Verdict};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use worker::{Error, Result};

thread_local! {
    static STATE: RefCell<FlakyState> = RefCell::new(FlakyState::new());
    static RNG: RefCell<Option<SmallRng>> = const { RefCell::new(None) };
}

/// A generator seeded from `crypto.getRandomValues`, so isolates draw independently.
fn seeded_rng() -> Result<SmallRng> {
    let mut seed = <SmallRng as SeedableRng>::Seed::default();
    getrandom::fill(seed.as_mut()).map_err(|e| Error::RustError(format!("no randomness: {e}")))?;
    Ok(SmallRng::from_seed(seed))
}

/// Decides one work request (and counts it).
pub fn decide(cfg: &FlakyConfig, now_ms: u64) -> Result<Verdict> {
    RNG.with_borrow_mut(|slot| {
        let rng = match slot {
            Some(rng) => rng,
            None => slot.insert(seeded_rng()?),
        };
        Ok(STATE.with_borrow_mut(|state| state.decide(cfg, now_ms, rng)))
    })
}

/// Counts a work request answered 400 for bad configuration.
pub fn record_invalid() {
    STATE.with_borrow_mut(FlakyState::record_invalid);
}

pub fn stats() -> Stats {
    STATE.with_borrow(FlakyState::stats)
}

/// Zeroes the counters and empties the rate window.
pub fn reset() {
    STATE.with_borrow_mut(FlakyState::reset);
}
