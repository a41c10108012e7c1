//! State that lives as long as one Worker isolate: the counters and rate window
//! ([`FlakyState`]) and the RNG. Workers run one isolate per thread, so both sit in
//! `thread_local` `RefCell`s, borrowed only for the synchronous decision, never across an `.await`.

use std::cell::RefCell;

use magnetar_flaky::{FlakyConfig, FlakyState, Stats, TagCounts, Verdict};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::Value;
use worker::{Error, Result};

thread_local! {
    static STATE: RefCell<FlakyState> = RefCell::new(FlakyState::new());
    static RNG: RefCell<Option<SmallRng>> = const { RefCell::new(None) };
    static TAGS: RefCell<TagCounts> = RefCell::new(TagCounts::new());
}

/// A generator seeded from `crypto.getRandomValues`, so isolates draw independently.
fn seeded_rng() -> Result<SmallRng> {
    let mut seed = <SmallRng as SeedableRng>::Seed::default();
    getrandom::fill(seed.as_mut()).map_err(|e| Error::RustError(format!("no randomness: {e}")))?;
    Ok(SmallRng::from_seed(seed))
}

/// Decides one work request and counts it, overall and under `tag` (the `x-flaky-tag` header).
pub fn decide(cfg: &FlakyConfig, now_ms: u64, tag: Option<&str>) -> Result<Verdict> {
    let verdict = RNG.with_borrow_mut(|slot| {
        let rng = match slot {
            Some(rng) => rng,
            None => slot.insert(seeded_rng()?),
        };
        Ok::<_, Error>(STATE.with_borrow_mut(|state| state.decide(cfg, now_ms, rng)))
    })?;
    TAGS.with_borrow_mut(|tags| tags.record(tag, &verdict));
    Ok(verdict)
}

/// Counts a work request answered 400 for bad configuration.
pub fn record_invalid(tag: Option<&str>) {
    STATE.with_borrow_mut(FlakyState::record_invalid);
    TAGS.with_borrow_mut(|tags| tags.record_invalid(tag));
}

/// The `/stats` body: the overall counters plus `"tags"`, the counters per tag.
pub fn report(worker: &str) -> Value {
    let mut body = stats().report(worker);
    body["tags"] = TAGS.with_borrow(TagCounts::report);
    body
}

pub fn stats() -> Stats {
    STATE.with_borrow(FlakyState::stats)
}

/// Zeroes the counters (tags forgotten too) and empties the rate window.
pub fn reset() {
    STATE.with_borrow_mut(FlakyState::reset);
    TAGS.with_borrow_mut(TagCounts::reset);
}
