//! Peer baseline: what Envoy's outlier detection would do with the same fleet.
//!
//! Envoy (`envoy.config.cluster.v3.OutlierDetection`, consecutive-5xx detector) ejects a host
//! after [`DEFAULT_CONSECUTIVE_5XX`] (5) consecutive 5xx answers, for `base_ejection_time` (30 s)
//! times the number of times it has been ejected, capped at `max_ejection_time` (300 s). While it
//! stays healthy its ejection count goes down by one every `interval` (10 s). At most
//! `max_ejection_percent` (10%) of the hosts are ejected at once, but at least one may always be.
//! The load-balancing policy runs over the hosts that are not ejected; Envoy's default is round
//! robin ([`EnvoyLb::RoundRobin`]), random ([`EnvoyLb::Random`]) is the other common choice,
//! selected with [`StrategyParams::envoy_lb`](super::StrategyParams) (`random` or `round_robin`). If fewer than
//! `healthy_panic_threshold` (50%) of the hosts are available, Envoy panics and balances over all
//! hosts, ejected or not; so does this baseline. It is what a user would deploy instead of
//! Magnetar.
//!
//! As in Envoy with `split_external_local_origin_errors: false` (the default), timeouts and
//! connection failures count as 5xx; any other answer (2xx-4xx, 429) resets the streak. The
//! success-rate and failure-percentage detectors are not modelled.
//!
//! Parameters: the Envoy defaults above, as constants and [`EnvoyConfig`]. No snapshot (nothing
//! is learned beyond the ejection state).

use rand::RngCore;

use super::{ArmId, Feedback, SelectContext, Strategy, StrategyKind};
use crate::Outcome;

/// Consecutive 5xx that eject a host.
pub const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
/// Base ejection time.
pub const DEFAULT_BASE_EJECTION_MS: u64 = 30_000;
/// Longest ejection.
pub const DEFAULT_MAX_EJECTION_MS: u64 = 300_000;
/// Interval after which a healthy host's ejection count goes down by one.
pub const DEFAULT_INTERVAL_MS: u64 = 10_000;
/// Most hosts ejected at once, percent (at least one host regardless).
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;
/// Below this percentage of available hosts, balance over all of them.
pub const DEFAULT_PANIC_THRESHOLD_PERCENT: u32 = 50;

/// The policy among hosts that are not ejected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnvoyLb {
    /// Envoy's default.
    #[default]
    RoundRobin,
    Random,
}

impl EnvoyLb {
    /// The name in configuration (`round_robin`, `random`).
    pub fn name(self) -> &'static str {
        match self {
            EnvoyLb::RoundRobin => "round_robin",
            EnvoyLb::Random => "random",
        }
    }
}

/// The name is not a load-balancing policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown envoy load-balancing policy {0:?}; valid: round_robin, random")]
pub struct UnknownEnvoyLb(pub String);

impl std::str::FromStr for EnvoyLb {
    type Err = UnknownEnvoyLb;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "round_robin" => Ok(EnvoyLb::RoundRobin),
            "random" => Ok(EnvoyLb::Random),
            _ => Err(UnknownEnvoyLb(s.to_owned())),
        }
    }
}

/// Envoy's outlier-detection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvoyConfig {
    pub consecutive_5xx: u32,
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
    pub interval_ms: u64,
    pub max_ejection_percent: u32,
    pub panic_threshold_percent: u32,
    pub lb: EnvoyLb,
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        EnvoyConfig {
            consecutive_5xx: DEFAULT_CONSECUTIVE_5XX,
            base_ejection_ms: DEFAULT_BASE_EJECTION_MS,
            max_ejection_ms: DEFAULT_MAX_EJECTION_MS,
            interval_ms: DEFAULT_INTERVAL_MS,
            max_ejection_percent: DEFAULT_MAX_EJECTION_PERCENT,
            panic_threshold_percent: DEFAULT_PANIC_THRESHOLD_PERCENT,
            lb: EnvoyLb::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Host {
    streak: u32,
    /// Some(end) while ejected.
    ejected_until: Option<u64>,
    /// Times ejected, less one per healthy interval.
    ejections: u32,
    /// When the ejection count was last brought up to date.
    settled_ms: u64,
}

/// Round robin (or random) over the hosts Envoy's outlier detection has not ejected.
#[derive(Debug, Clone)]
pub struct EnvoyOutlier {
    hosts: Vec<Host>,
    config: EnvoyConfig,
    next: usize,
}

impl EnvoyOutlier {
    pub fn new(arms: usize) -> Self {
        EnvoyOutlier::with_config(arms, EnvoyConfig::default())
    }

    pub fn with_config(arms: usize, config: EnvoyConfig) -> Self {
        EnvoyOutlier { hosts: vec![Host::default(); arms], config, next: 0 }
    }

    /// The settings in use.
    pub fn config(&self) -> &EnvoyConfig {
        &self.config
    }

    /// Whether `arm` is ejected at `now_ms`.
    pub fn ejected(&self, arm: ArmId, now_ms: u64) -> bool {
        self.hosts.get(arm).and_then(|h| h.ejected_until).is_some_and(|end| now_ms < end)
    }

    /// Brings ejections up to date: ends those that ran out and lowers the count of hosts that
    /// stayed healthy for whole intervals.
    fn settle(&mut self, now_ms: u64) {
        let interval = self.config.interval_ms.max(1);
        for h in &mut self.hosts {
            if let Some(end) = h.ejected_until {
                if now_ms < end {
                    continue;
                }
                h.ejected_until = None;
                h.settled_ms = end;
            }
            if now_ms > h.settled_ms {
                let healthy = (now_ms - h.settled_ms) / interval;
                h.ejections = h.ejections.saturating_sub(healthy.min(u64::from(u32::MAX)) as u32);
                h.settled_ms += healthy * interval;
            }
        }
    }

    fn max_ejected(&self) -> usize {
        let cap = self.hosts.len() * self.config.max_ejection_percent as usize / 100;
        cap.max(1)
    }
}

impl Strategy for EnvoyOutlier {
    fn kind(&self) -> StrategyKind {
        StrategyKind::EnvoyOutlier
    }

    fn arms(&self) -> usize {
        self.hosts.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        self.settle(ctx.now_ms);
        let arms = self.hosts.len();
        let available = self.hosts.iter().filter(|h| h.ejected_until.is_none()).count();
        let panic = available * 100 < arms * self.config.panic_threshold_percent as usize;
        let usable =
            |a: ArmId| !ctx.is_excluded(a) && (panic || self.hosts[a].ejected_until.is_none());
        // Everything usable is vetoed: fall back to any allowed host, ejected or not.
        let any_usable = (0..arms).any(usable);
        let ok = |a: ArmId| if any_usable { usable(a) } else { !ctx.is_excluded(a) };
        match self.config.lb {
            EnvoyLb::RoundRobin => {
                let arm = (0..arms).map(|o| (self.next + o) % arms).find(|a| ok(*a))?;
                self.next = (arm + 1) % arms;
                Some(arm)
            }
            EnvoyLb::Random => {
                let n = (0..arms).filter(|a| ok(*a)).count();
                if n == 0 {
                    return None;
                }
                let nth = (rng.next_u64() % n as u64) as usize;
                (0..arms).filter(|a| ok(*a)).nth(nth)
            }
        }
    }

    fn update(&mut self, arm: ArmId, feedback: &Feedback) {
        if arm >= self.hosts.len() {
            return;
        }
        let now = feedback.now_ms;
        self.settle(now);
        let is_5xx = matches!(
            feedback.outcome,
            Outcome::ServerError | Outcome::Timeout | Outcome::ConnectError
        );
        let ejected_now = self.hosts.iter().filter(|h| h.ejected_until.is_some()).count();
        let cap = self.max_ejected();
        let c = self.config;
        let h = &mut self.hosts[arm];
        if !is_5xx {
            h.streak = 0;
            return;
        }
        h.streak = h.streak.saturating_add(1);
        if h.streak >= c.consecutive_5xx && h.ejected_until.is_none() && ejected_now < cap {
            h.ejections = h.ejections.saturating_add(1);
            let time = c.base_ejection_ms.saturating_mul(u64::from(h.ejections));
            h.ejected_until =
                Some(now.saturating_add(time.min(c.max_ejection_ms.max(c.base_ejection_ms))));
            h.streak = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn fail(s: &mut EnvoyOutlier, arm: ArmId, times: u32, now: u64) {
        for _ in 0..times {
            s.update(arm, &Feedback::at(Outcome::ServerError, now));
        }
    }

    #[test]
    fn ejects_after_consecutive_5xx_for_a_growing_time() {
        let mut s = EnvoyOutlier::new(4);
        fail(&mut s, 0, 4, 0);
        s.update(0, &Feedback::at(Outcome::RateLimited, 0)); // resets the streak
        fail(&mut s, 0, 4, 0);
        assert!(!s.ejected(0, 0));
        fail(&mut s, 0, 1, 1_000);
        assert!(s.ejected(0, 1_000) && s.ejected(0, 30_999) && !s.ejected(0, 31_000));
        let mut rng = SmallRng::seed_from_u64(1);
        let picks: Vec<_> =
            (0..6).map(|t| s.select(&SelectContext::first(2_000 + t), &mut rng).unwrap()).collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
        // Ejected again right after: twice the base time.
        fail(&mut s, 0, 5, 31_000);
        assert!(s.ejected(0, 90_999) && !s.ejected(0, 91_000));
    }

    #[test]
    fn ejection_count_decays_while_healthy() {
        let mut s = EnvoyOutlier::new(4);
        fail(&mut s, 0, 5, 0); // ejected until 30 s, count 1
        // 30 s + two healthy intervals later the count is back to 0: the next ejection is 30 s.
        fail(&mut s, 0, 5, 50_000);
        assert!(s.ejected(0, 79_999) && !s.ejected(0, 80_000));
    }

    #[test]
    fn random_mode_spreads_uniformly_over_the_hosts_not_ejected() {
        let config = EnvoyConfig { lb: EnvoyLb::Random, ..EnvoyConfig::default() };
        let mut s = EnvoyOutlier::with_config(4, config);
        fail(&mut s, 2, 5, 0);
        assert!(s.ejected(2, 1));
        let mut rng = SmallRng::seed_from_u64(3);
        let mut counts = [0u32; 4];
        let mut in_order = true;
        let mut last = None;
        for t in 0..9_000 {
            let arm = s.select(&SelectContext::first(1 + t % 1_000), &mut rng).unwrap();
            counts[arm] += 1;
            in_order &= last.is_none_or(|l: usize| arm == (l + 1) % 4 || (l == 1 && arm == 3));
            last = Some(arm);
        }
        assert_eq!(counts[2], 0, "ejected");
        // 9,000 uniform picks among 3 hosts: 3,000 each, sd 45; ±250 is over 5 sd.
        for c in [counts[0], counts[1], counts[3]] {
            assert!(c.abs_diff(3_000) < 250, "{counts:?}");
        }
        assert!(!in_order, "random mode must not cycle");
        assert_eq!("Random".parse::<EnvoyLb>(), Ok(EnvoyLb::Random));
        assert!("least_request".parse::<EnvoyLb>().is_err());
    }

    #[test]
    fn caps_the_ejected_share_and_panics_below_the_threshold() {
        let mut s = EnvoyOutlier::new(3); // 10% of 3 hosts: the "at least one" rule applies
        fail(&mut s, 0, 5, 0);
        fail(&mut s, 1, 5, 0);
        assert!(s.ejected(0, 1) && !s.ejected(1, 1));
        let mut rng = SmallRng::seed_from_u64(1);
        let ctx = SelectContext::new(&[1, 2], 3, 1);
        assert_eq!(s.select(&ctx, &mut rng), Some(0), "an ejected host beats no host");
        let config = EnvoyConfig { max_ejection_percent: 100, ..EnvoyConfig::default() };
        let mut s = EnvoyOutlier::with_config(2, config);
        fail(&mut s, 0, 5, 0);
        fail(&mut s, 1, 5, 0);
        // Both ejected: 0% available is below the panic threshold, traffic goes everywhere.
        let picks: Vec<_> =
            (0..4).map(|t| s.select(&SelectContext::first(t), &mut rng).unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }
}
