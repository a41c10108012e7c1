//! Requests whose best downstream depends on what they are: the contexts the simulator gives its
//! requests, for scenarios where context matters.
//!
//! A scenario with a [`ContextSplit`] gives every request a [`RequestContext`] (the type the
//! router builds from `request.cf` and the request): a share `share` of the requests have the
//! path class `path_class` and are served at the usual rate only by the downstreams `served_by`
//! (every other downstream succeeds for them with probability at most `elsewhere`); the others
//! have the path class `other_path_class` and are served by every downstream at its usual rate.
//! The rest of each context is noise a contextual strategy must learn to ignore: the method (GET
//! 70%, POST 30%), the body size (empty for GET, 100 B to 64 KiB for POST), the caller (one of
//! 8), the country (one of 5) and the colo (one of 3), drawn independently of the path class.
//!
//! The oracle and the regret read the request's own success probabilities (the engine applies
//! [`ContextSplit::cap`] to every downstream's odds for the request), so the oracle is the best
//! downstream *for each request*, which a non-contextual strategy cannot reach.

use magnetar_core::context::{RequestContext, RequestFacts, path_bucket};
use rand::Rng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

const CALLERS: [&str; 8] =
    ["web", "ios", "android", "batch", "partner-a", "partner-b", "cli", "cron"];
const COUNTRIES: [&str; 5] = ["DE", "FR", "US", "BR", "JP"];
const COLOS: [&str; 3] = ["FRA", "CDG", "IAD"];

/// A [`ContextSplit`] that does not fit its fleet: the field (`context.share`, ...) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SplitError {
    pub field: String,
    pub problem: String,
}

/// Two kinds of request told apart by their path class, one served only by some downstreams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSplit {
    /// Share of requests of the class `path_class`.
    pub share: f64,
    /// Path class of the requests only `served_by` serve well.
    pub path_class: String,
    /// Path class of the other requests.
    pub other_path_class: String,
    /// Downstreams (indices) that serve `path_class` requests at their usual rate.
    pub served_by: Vec<usize>,
    /// Highest success of a `path_class` request on any other downstream.
    pub elsewhere: f64,
}

impl ContextSplit {
    /// Draws one request: whether it is of the special class, and its context.
    pub fn draw(&self, rng: &mut SmallRng) -> (bool, RequestContext) {
        let special = rng.random::<f64>() < self.share;
        let post = rng.random::<f64>() < 0.3;
        let body_bytes = if post { rng.random_range(100..=64 * 1024) } else { 0 };
        let path = if special { &self.path_class } else { &self.other_path_class };
        let facts = RequestFacts {
            colo: Some(COLOS[rng.random_range(0..COLOS.len())].to_owned()),
            country: Some(COUNTRIES[rng.random_range(0..COUNTRIES.len())].to_owned()),
            method: if post { "POST" } else { "GET" }.to_owned(),
            path_class: path.clone(),
            body_bytes,
            caller: Some(CALLERS[rng.random_range(0..CALLERS.len())].to_owned()),
        };
        (special, RequestContext::new(facts))
    }

    /// The cap on `arm`'s success for a request of the special class or not.
    pub fn cap(&self, special: bool, arm: usize) -> f64 {
        if special && !self.served_by.contains(&arm) { self.elsewhere } else { 1.0 }
    }

    /// Checks the split against a fleet of `arms`; the error names the field.
    pub fn check(&self, arms: usize) -> Result<(), SplitError> {
        let invalid = |field: &str, problem: String| SplitError {
            field: format!("context.{field}"),
            problem,
        };
        for (field, p) in [("share", self.share), ("elsewhere", self.elsewhere)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(invalid(field, format!("must be a probability in 0..=1, got {p}")));
            }
        }
        if let Some(i) = self.served_by.iter().position(|a| *a >= arms) {
            let problem =
                format!("must be a downstream index below {arms}, got {}", self.served_by[i]);
            return Err(invalid(&format!("served_by[{i}]"), problem));
        }
        for (field, class) in
            [("path_class", &self.path_class), ("other_path_class", &self.other_path_class)]
        {
            if !class.starts_with('/') {
                return Err(invalid(field, format!("must start with '/', got {class:?}")));
            }
        }
        if path_bucket(&self.path_class) == path_bucket(&self.other_path_class) {
            let problem = format!(
                "{:?} and {:?} share a hashed feature bucket: no strategy could tell them apart",
                self.path_class, self.other_path_class
            );
            return Err(invalid("other_path_class", problem));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::SeedableRng;

    use super::*;

    fn split() -> ContextSplit {
        ContextSplit {
            share: 0.5,
            path_class: "/eu/orders".into(),
            other_path_class: "/us/orders".into(),
            served_by: vec![2, 3],
            elsewhere: 0.0,
        }
    }

    #[test]
    fn draws_the_share_and_noise_independent_of_the_class() {
        let s = split();
        let mut rng = SmallRng::seed_from_u64(1);
        let draws: Vec<_> = (0..20_000).map(|_| s.draw(&mut rng)).collect();
        let special = draws.iter().filter(|d| d.0).count() as f64 / 20_000.0;
        // sd of the share over 20,000 draws: 0.0035.
        assert!((special - 0.5).abs() < 0.015, "{special}");
        for (is, ctx) in &draws {
            let class = if *is { "/eu/orders" } else { "/us/orders" };
            assert_eq!(ctx.facts().path_class, class);
        }
        let posts = |want: bool| {
            let of: Vec<_> = draws.iter().filter(|d| d.0 == want).collect();
            of.iter().filter(|d| d.1.facts().method == "POST").count() as f64 / of.len() as f64
        };
        assert!((posts(true) - posts(false)).abs() < 0.03, "{} {}", posts(true), posts(false));
        assert_eq!(s.cap(true, 0), 0.0);
        assert_eq!(s.cap(true, 2), 1.0);
        assert_eq!(s.cap(false, 0), 1.0);
    }

    #[test]
    fn bad_splits_name_the_field() {
        let err = |s: ContextSplit| s.check(4).unwrap_err().to_string();
        assert!(err(ContextSplit { share: 1.5, ..split() }).starts_with("context.share: "));
        assert!(
            err(ContextSplit { served_by: vec![1, 4], ..split() })
                .starts_with("context.served_by[1]: ")
        );
        assert!(
            err(ContextSplit { path_class: "eu".into(), ..split() })
                .starts_with("context.path_class: ")
        );
        let same = ContextSplit { other_path_class: "/eu/orders".into(), ..split() };
        assert!(err(same).starts_with("context.other_path_class: "));
        assert_eq!(split().check(4), Ok(()));
    }

    proptest! {
        #[test]
        fn any_split_is_accepted_only_when_every_field_is_in_range(
            share in -1.0..2.0f64,
            elsewhere in -1.0..2.0f64,
            served_by in proptest::collection::vec(0..8usize, 0..4),
            path in "/?[a-z]{0,6}",
            arms in 1..6usize,
        ) {
            let s = ContextSplit { share, elsewhere, served_by: served_by.clone(), path_class: path.clone(), ..split() };
            let ok = (0.0..=1.0).contains(&share)
                && (0.0..=1.0).contains(&elsewhere)
                && served_by.iter().all(|a| *a < arms)
                && path.starts_with('/')
                && path_bucket(&path) != path_bucket("/us/orders");
            match s.check(arms) {
                Ok(()) => prop_assert!(ok),
                Err(e) => {
                    prop_assert!(!ok);
                    prop_assert!(e.to_string().starts_with("context."), "{}", e);
                }
            }
        }
    }
}
