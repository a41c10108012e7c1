//! The oracle: the best attempt chain the router's real options allow, for one request.
//!
//! At a request's arrival the oracle knows every host's state exactly (its [`HostOdds`]) and
//! chooses the chain of attempts `h_1, h_2, ..., h_m` that the router's options allow
//! ([`RetryOptions`]):
//!
//! - **attempt budget**: `m <= max_attempts`;
//! - **retry mode**: with `distinct`, no host appears twice (and `m <= hosts`); otherwise a host
//!   may be retried;
//! - **deadline**: the router starts a retry only while the request's deadline has not passed
//!   ([`AttemptPlan::record`](magnetar_core::retry::AttemptPlan::record)). The oracle plans only
//!   attempts that start before the deadline whatever the earlier attempts' latencies, each of
//!   which lasts at most the attempt timeout `T`: attempt `j` starts by `(j - 1) T`, so
//!   `m <= ceil(deadline / T)` ([`RetryOptions::attempts_within_deadline`]).
//!
//! The retry budget across requests is not modelled: the oracle is an upper bound for a router
//! whose retries are never denied.
//!
//! **Success.** Attempt `j` on host `h` succeeds with probability `q_j`: the host's `success`
//! the first time the chain uses it, its `repeat_success` (the odds of a retry on a host that
//! already failed the request, lower when failures are sticky) every later time. The attempts of a chain are otherwise
//! independent, so the chain succeeds with probability `1 - Π_j (1 - q_j)`.
//!
//! **Latency.** An attempt that succeeds lasts the host's `success_ms`, one that fails its
//! `failure_ms`; the chain stops at the first success. Its expected latency (to the answer,
//! success or not) is `Σ_j Π_{l<j} (1 - q_l) c_j` with `c_j = q_j success_ms + (1 - q_j)
//! failure_ms`.
//!
//! **The choice.** The oracle maximises success first and, among the chains of greatest
//! success, minimises expected latency. Since a host's first use is never worse than its repeats
//! (`success >= repeat_success`), the greatest success takes the `m` greatest odds among the
//! hosts' first uses and (without `distinct`) their repeats, leaving out odds of 0, which add
//! latency and no success; equal odds are broken by the lower cost `c`. The latency is then
//! least when the attempts run in increasing order of `c_j / q_j` (the classic rule for
//! sequential tests: swapping two neighbours `a, b` helps exactly when
//! `c_b / q_b < c_a / q_a`). `tests::the_chain_equals_brute_force_enumeration` checks the
//! result against every chain of small fleets.

use magnetar_core::strategy::ArmId;
use serde::Serialize;

/// What the oracle knows about one host at a request's arrival.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HostOdds {
    /// Probability that the chain's first attempt on this host succeeds (0 while it is down or
    /// saturated).
    pub success: f64,
    /// Probability that a retry on this host succeeds after it failed the same request.
    pub repeat_success: f64,
    /// Duration of an attempt that succeeds.
    pub success_ms: f64,
    /// Expected duration of an attempt that fails.
    pub failure_ms: f64,
}

impl HostOdds {
    /// A host whose attempts succeed with probability `p`, independently, taking `latency_ms`.
    pub fn independent(p: f64, latency_ms: f64) -> HostOdds {
        HostOdds { success: p, repeat_success: p, success_ms: latency_ms, failure_ms: latency_ms }
    }
}

/// The router's retry options the oracle must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RetryOptions {
    pub max_attempts: u32,
    pub distinct: bool,
    pub attempt_timeout_ms: u64,
    pub request_deadline_ms: u64,
}

impl RetryOptions {
    /// Attempts that surely start before the deadline: `ceil(deadline / attempt timeout)`, at
    /// least 1.
    pub fn attempts_within_deadline(&self) -> u32 {
        let per = self.attempt_timeout_ms.max(1);
        u32::try_from(self.request_deadline_ms.div_ceil(per)).unwrap_or(u32::MAX).max(1)
    }

    /// The longest chain allowed on `hosts` hosts.
    pub fn longest_chain(&self, hosts: usize) -> usize {
        let m = self.max_attempts.max(1).min(self.attempts_within_deadline()) as usize;
        if self.distinct { m.min(hosts) } else { m }
    }
}

/// An attempt chain with its success probability and expected latency.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Chain {
    pub hosts: Vec<ArmId>,
    pub success: f64,
    pub expected_latency_ms: f64,
}

/// The success probability and expected latency of attempting `hosts` in this order.
pub fn evaluate(hosts: &[ArmId], odds: &[HostOdds]) -> Chain {
    let mut used = vec![false; odds.len()];
    let (mut reach, mut latency) = (1.0, 0.0);
    for &h in hosts {
        let o = &odds[h];
        let q = if used[h] { o.repeat_success } else { o.success };
        used[h] = true;
        latency += reach * (q * o.success_ms + (1.0 - q) * o.failure_ms);
        reach *= 1.0 - q;
    }
    Chain { hosts: hosts.to_vec(), success: 1.0 - reach, expected_latency_ms: latency }
}

/// One attempt the chain may include: the `nth` use of `host`.
struct Slot {
    host: ArmId,
    nth: usize,
    q: f64,
    cost: f64,
}

/// The best chain for `odds` under `options` (see the module docs).
pub fn best_chain(odds: &[HostOdds], options: &RetryOptions) -> Chain {
    let m = options.longest_chain(odds.len());
    let repeats = if options.distinct { 0 } else { m.saturating_sub(1) };
    let mut slots: Vec<Slot> = Vec::with_capacity(odds.len() * (1 + repeats));
    for (host, o) in odds.iter().enumerate() {
        for nth in 0..=repeats {
            let q = if nth == 0 { o.success } else { o.repeat_success };
            if q > 0.0 {
                slots.push(Slot {
                    host,
                    nth,
                    q,
                    cost: q * o.success_ms + (1.0 - q) * o.failure_ms,
                });
            }
        }
    }
    slots.sort_by(|a, b| {
        b.q.total_cmp(&a.q)
            .then(a.cost.total_cmp(&b.cost))
            .then(a.host.cmp(&b.host))
            .then(a.nth.cmp(&b.nth))
    });
    slots.truncate(m);
    slots.sort_by(|a, b| {
        (a.cost / a.q).total_cmp(&(b.cost / b.q)).then(a.host.cmp(&b.host)).then(a.nth.cmp(&b.nth))
    });
    let hosts: Vec<ArmId> = slots.iter().map(|s| s.host).collect();
    evaluate(&hosts, odds)
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Every chain of length 1..=longest, the best by (success, then latency).
    fn brute_force(odds: &[HostOdds], options: &RetryOptions) -> Chain {
        let m = options.longest_chain(odds.len());
        let mut best = Chain::default();
        let mut chain = Vec::new();
        fn walk(
            chain: &mut Vec<ArmId>,
            m: usize,
            odds: &[HostOdds],
            distinct: bool,
            best: &mut Chain,
        ) {
            let c = evaluate(chain, odds);
            let better = c.success > best.success + 1e-12
                || (c.success > best.success - 1e-12
                    && c.expected_latency_ms < best.expected_latency_ms - 1e-9);
            if better {
                *best = c;
            }
            if chain.len() == m {
                return;
            }
            for h in 0..odds.len() {
                if distinct && chain.contains(&h) {
                    continue;
                }
                chain.push(h);
                walk(chain, m, odds, distinct, best);
                chain.pop();
            }
        }
        walk(&mut chain, m, odds, options.distinct, &mut best);
        best
    }

    fn random_odds(rng: &mut SmallRng, hosts: usize) -> Vec<HostOdds> {
        (0..hosts)
            .map(|_| {
                // Some dead hosts, some ties, some sticky ones.
                let p = match rng.random_range(0..4) {
                    0 => 0.0,
                    1 => 0.5,
                    _ => rng.random::<f64>(),
                };
                let stick = if rng.random_bool(0.5) { rng.random::<f64>() } else { 0.0 };
                let after_failure = rng.random_bool(0.3);
                let repeat = (1.0 - stick) * p;
                HostOdds {
                    success: if after_failure { repeat } else { p },
                    repeat_success: repeat,
                    success_ms: rng.random_range(1.0..500.0),
                    failure_ms: rng.random_range(1.0..2_000.0),
                }
            })
            .collect()
    }

    #[test]
    fn the_chain_equals_brute_force_enumeration() {
        let mut rng = SmallRng::seed_from_u64(11);
        for case in 0..600 {
            let hosts = 1 + case % 5;
            let odds = random_odds(&mut rng, hosts);
            let options = RetryOptions {
                max_attempts: 1 + (case % 4) as u32,
                distinct: case % 2 == 0,
                attempt_timeout_ms: 1_000,
                request_deadline_ms: [1_000, 2_500, 6_000][case % 3],
            };
            let fast = best_chain(&odds, &options);
            let slow = brute_force(&odds, &options);
            assert!((fast.success - slow.success).abs() < 1e-12, "{case}: {fast:?} vs {slow:?}");
            assert!(
                (fast.expected_latency_ms - slow.expected_latency_ms).abs() < 1e-6,
                "{case}: {odds:?} {options:?}\n{fast:?} vs {slow:?}"
            );
            assert_eq!(fast, evaluate(&fast.hosts, &odds));
            assert!(fast.hosts.len() <= options.longest_chain(hosts));
        }
    }

    #[test]
    fn options_bound_the_chain() {
        let o = RetryOptions {
            max_attempts: 3,
            distinct: true,
            attempt_timeout_ms: 2_000,
            request_deadline_ms: 6_000,
        };
        assert_eq!(o.attempts_within_deadline(), 3);
        assert_eq!(o.longest_chain(2), 2);
        let tight = RetryOptions { request_deadline_ms: 2_500, ..o };
        assert_eq!(tight.attempts_within_deadline(), 2);
        let repeat = RetryOptions { distinct: false, ..o };
        assert_eq!(repeat.longest_chain(1), 3);
        // Distinct retries on 90/50/10%: the two best, the faster first at equal odds.
        let odds = [
            HostOdds::independent(0.5, 100.0),
            HostOdds::independent(0.9, 50.0),
            HostOdds::independent(0.1, 10.0),
        ];
        let c = best_chain(&odds, &RetryOptions { max_attempts: 2, ..o });
        assert_eq!(c.hosts, [1, 0]);
        assert!((c.success - (1.0 - 0.1 * 0.5)).abs() < 1e-12);
        assert!((c.expected_latency_ms - (50.0 + 0.1 * 100.0)).abs() < 1e-9);
        // Repeats allowed: the 90% host three times; sticky failures make moving on better.
        let c = best_chain(&odds, &repeat);
        assert_eq!(c.hosts, [1, 1, 1]);
        let sticky = [HostOdds { repeat_success: 0.2, ..odds[1] }, odds[0], odds[2]];
        assert_eq!(best_chain(&sticky, &repeat).hosts, [0, 1, 1]);
        // Nothing can succeed: no attempt is worth making.
        let dead = [HostOdds::independent(0.0, 10.0); 2];
        assert_eq!(best_chain(&dead, &o), Chain::default());
    }
}
