//! The attempt chain: which downstreams a request's remaining attempts should go to, and which
//! of them goes first.
//!
//! Given, for every allowed downstream `i`, a success probability for an attempt now (`p_i`, a
//! Thompson draw), for an attempt right after a failure there (`r_i`, the repeat rate), and a cost
//! (`c_i`, the expected latency of an attempt plus a fixed per-attempt cost), the chain of the
//! `R` remaining attempts is chosen in two steps:
//!
//! 1. **Success.** With independent attempts a chain fails only if every attempt fails, so its
//!    success `1 - prod(1 - q_k)` depends on the multiset of its slot probabilities, not on their
//!    order. The best chain takes the `R` largest slots among each downstream's first slot `p_i`
//!    and, when repeats are allowed, its repeat slots `r_i` (a repeat slot counts only after the
//!    downstream's first slot, which holds because `r_i <= p_i` is enforced).
//! 2. **Cost.** The order of the chosen downstreams does not change the chain's success but does
//!    change its expected cost `sum_k C_k prod_{j<k} (1 - q_j)`. For a sequence of independent
//!    trials that stops at the first success, the order by decreasing success per unit of cost
//!    (`P / C`) minimises that expectation (the classic sequential-testing result: Mitten, "An
//!    analytic solution to the least cost testing sequence problem", 1960; the same exchange
//!    argument orders a downstream's block of repeats as one unit, as Sidney's rule does for
//!    series-parallel precedence). Only the first element is returned: the next attempt plans
//!    again with what it learned.
//!
//! With one attempt left the chain is the single most probable downstream, so with a single
//! attempt the strategy is Thompson sampling; with equal costs the order is by probability.

use crate::strategy::ArmId;

/// One allowed downstream as the chain sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub arm: ArmId,
    /// Success probability of an attempt on it now.
    pub p: f64,
    /// Success probability of an attempt on it right after one there failed.
    pub repeat: f64,
    /// Cost of one attempt (expected latency plus the per-attempt cost), > 0.
    pub cost: f64,
}

/// At most this many slots are considered (the attempt cap).
const MAX_SLOTS: usize = crate::retry::MAX_ATTEMPTS_CAP as usize;

/// The downstream the next attempt should go to, given `remaining` attempts (this one included)
/// and whether an attempt may repeat the previous attempt's downstream. `None` when there is no
/// candidate.
pub fn first(candidates: &[Candidate], remaining: u32, repeats: bool) -> Option<ArmId> {
    let r = (remaining as usize).clamp(1, MAX_SLOTS);
    if r == 1 {
        return candidates
            .iter()
            .fold(None::<&Candidate>, |best, c| match best {
                Some(b) if b.p > c.p || (b.p == c.p && b.cost <= c.cost) => Some(b),
                _ => Some(c),
            })
            .map(|c| c.arm);
    }
    // The `r` largest slots: (value, candidate index), a first slot before its repeats.
    // Slots rank by value, then by lower cost; an equal slot never displaces an earlier one.
    let mut top: [(f64, usize); MAX_SLOTS] = [(f64::NEG_INFINITY, usize::MAX); MAX_SLOTS];
    let mut len = 0usize;
    let above = |a: (f64, f64), b: (f64, f64)| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
    let mut insert = |value: f64, index: usize| {
        let key = (value, candidates[index].cost);
        let key_of = |slot: (f64, usize)| (slot.0, candidates.get(slot.1).map_or(0.0, |c| c.cost));
        if len == r && !above(key, key_of(top[r - 1])) {
            return;
        }
        let mut at = len.min(r - 1);
        if len < r {
            len += 1;
        }
        while at > 0 && above(key, key_of(top[at - 1])) {
            top[at] = top[at - 1];
            at -= 1;
        }
        top[at] = (value, index);
    };
    for (i, c) in candidates.iter().enumerate() {
        insert(c.p, i);
        if repeats {
            let rep = c.repeat.min(c.p);
            for _ in 1..r {
                insert(rep, i);
            }
        }
    }
    // Per chosen downstream: its slots, then its block's success per unit of expected cost.
    let mut best: Option<(f64, usize)> = None;
    for k in 0..len {
        let i = top[k].1;
        if top[..k].iter().any(|(_, j)| *j == i) {
            continue;
        }
        let slots = top[..len].iter().filter(|(_, j)| *j == i).count();
        let c = &candidates[i];
        let rep = c.repeat.min(c.p);
        let (mut fail, mut cost, mut reach) = (1.0 - c.p, c.cost, 1.0 - c.p);
        for _ in 1..slots {
            cost += reach * c.cost;
            fail *= 1.0 - rep;
            reach *= 1.0 - rep;
        }
        let ratio = (1.0 - fail) / cost.max(f64::MIN_POSITIVE);
        if best.is_none_or(|(b, _)| ratio > b) {
            best = Some((ratio, i));
        }
    }
    best.map(|(_, i)| candidates[i].arm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(arm: ArmId, p: f64, repeat: f64, cost: f64) -> Candidate {
        Candidate { arm, p, repeat, cost }
    }

    /// Expected cost and success of trying `chain` in order (independent attempts).
    fn evaluate(chain: &[(f64, f64)]) -> (f64, f64) {
        let (mut reach, mut cost) = (1.0, 0.0);
        for (p, c) in chain {
            cost += reach * c;
            reach *= 1.0 - p;
        }
        (1.0 - reach, cost)
    }

    #[test]
    fn one_attempt_left_takes_the_most_probable() {
        let c = [cand(0, 0.5, 0.5, 1.0), cand(1, 0.99, 0.99, 100.0), cand(2, 0.9, 0.9, 1.0)];
        assert_eq!(first(&c, 1, true), Some(1));
        assert_eq!(first(&[], 3, true), None);
    }

    #[test]
    fn a_fast_reliable_host_goes_before_a_slow_more_reliable_one() {
        // Reliable but slow (200 ms, 99.9%), fast (20 ms, 98%), fast and bad (10 ms, 50%); the
        // per-attempt cost is 10 ms. Two attempts: the chain is {slow, fast} (the two most
        // probable), and the fast one goes first.
        let c = [cand(0, 0.999, 0.999, 210.0), cand(1, 0.98, 0.98, 30.0), cand(2, 0.5, 0.5, 20.0)];
        assert_eq!(first(&c, 2, false), Some(1));
        // Brute force over every ordered pair of distinct downstreams agrees.
        let mut best = (0.0, f64::INFINITY, usize::MAX);
        for a in 0..3 {
            for b in 0..3 {
                if a == b {
                    continue;
                }
                let (s, cost) = evaluate(&[(c[a].p, c[a].cost), (c[b].p, c[b].cost)]);
                if s > best.0 + 1e-12 || ((s - best.0).abs() <= 1e-12 && cost < best.1) {
                    best = (s, cost, a);
                }
            }
        }
        assert_eq!(best.2, 1);
    }

    #[test]
    fn repeats_the_best_host_when_its_failures_are_independent() {
        // The prototype's fleet: 0%, 0%, 10%. Independent failures: three tries on the third.
        let c = [cand(0, 0.0, 0.0, 20.0), cand(1, 0.0, 0.0, 20.0), cand(2, 0.1, 0.1, 20.0)];
        assert_eq!(first(&c, 3, true), Some(2));
        // Sticky failures on the good host, a fair second host: go to the good one first, the
        // chain then moves on (checked by the caller through `repeat`).
        let c = [cand(0, 0.6, 0.6, 20.0), cand(1, 0.9, 0.05, 20.0)];
        assert_eq!(first(&c, 2, true), Some(1));
    }

    #[test]
    fn matches_brute_force_on_small_fleets() {
        // Every chain of `r` attempts over 3 downstreams (repeats adjacent only), for a grid of
        // probabilities and costs: the chosen first downstream starts a chain with the best
        // success, and among those the least expected cost.
        let ps = [0.05, 0.5, 0.9, 0.99];
        let costs = [5.0, 50.0, 200.0];
        let mut checked = 0;
        for &p0 in &ps {
            for &p1 in &ps {
                for &p2 in &ps {
                    for &c0 in &costs {
                        for &c2 in &costs {
                            let c =
                                [cand(0, p0, p0, c0), cand(1, p1, p1, 50.0), cand(2, p2, p2, c2)];
                            for r in 1..=3u32 {
                                for repeats in [false, true] {
                                    check(&c, r, repeats);
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 4 * 4 * 4 * 3 * 3 * 3 * 2);
    }

    fn check(c: &[Candidate], r: u32, repeats: bool) {
        let mut chains: Vec<Vec<usize>> = vec![vec![]];
        for _ in 0..r {
            let mut next = Vec::new();
            for ch in &chains {
                for i in 0..c.len() {
                    let used = ch.contains(&i);
                    let adjacent = ch.last() == Some(&i);
                    if !used || (repeats && adjacent) {
                        let mut n = ch.clone();
                        n.push(i);
                        next.push(n);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            chains = next;
        }
        let value = |ch: &Vec<usize>| {
            let slots: Vec<(f64, f64)> = ch
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let repeat = k > 0 && ch[k - 1] == i;
                    (if repeat { c[i].repeat } else { c[i].p }, c[i].cost)
                })
                .collect();
            evaluate(&slots)
        };
        let best_success = chains.iter().map(|ch| value(ch).0).fold(0.0, f64::max);
        let pick = first(c, r, repeats).unwrap();
        let best_cost = chains
            .iter()
            .filter(|ch| value(ch).0 >= best_success - 1e-9)
            .map(|ch| value(ch).1)
            .fold(f64::INFINITY, f64::min);
        let pick_cost = chains
            .iter()
            .filter(|ch| ch[0] == pick && value(ch).0 >= best_success - 1e-9)
            .map(|ch| value(ch).1)
            .fold(f64::INFINITY, f64::min);
        assert!(
            pick_cost <= best_cost * (1.0 + 1e-9),
            "r={r} repeats={repeats} {c:?}: picked {pick} (cost {pick_cost}), best {best_cost}"
        );
    }
}
