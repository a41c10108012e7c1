//! The lab's lane statistics: each lane's success with its Wilson interval and every Magnetar
//! lane against every peer by Newcombe's interval, from [`magnetar_core::stats`] (the methods
//! and their sources are described there; the learner's experiment reports use the same code).

use serde::Serialize;

pub use magnetar_core::stats::{
    CONFIDENCE, Interval, Proportion, Verdict, Z_95, newcombe_difference, requests_to_distinguish,
    wilson,
};

/// The counts of one lane an interval rests on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LaneCounts {
    pub label: String,
    /// `magnetar` or `peer`.
    pub kind: String,
    pub requests: u64,
    pub successes: u64,
    pub first_attempt_successes: u64,
}

/// One lane's success and first-attempt success with their 95% intervals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LaneStatistics {
    pub label: String,
    pub kind: String,
    pub success: Proportion,
    pub first_attempt_success: Proportion,
}

/// A Magnetar lane's success against a peer's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub lane: String,
    pub peer: String,
    /// `lane − peer` success rate.
    pub difference: f64,
    pub interval: Interval,
    pub verdict: Verdict,
    /// Requests per lane a difference this size needs to be told apart ([`requests_to_distinguish`]).
    pub requests_to_distinguish: Option<u64>,
}

/// Every lane's intervals and every Magnetar lane against every peer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Statistics {
    pub confidence: f64,
    pub proportion_method: &'static str,
    pub difference_method: &'static str,
    /// Whole comparisons whose counts were pooled (`--repeats`).
    pub repeats: usize,
    pub lanes: Vec<LaneStatistics>,
    pub comparisons: Vec<Comparison>,
}

impl Statistics {
    /// The intervals of `lanes` (counts pooled over `repeats` comparisons) and the comparisons of
    /// each Magnetar lane with each peer.
    pub fn of(lanes: &[LaneCounts], repeats: usize) -> Statistics {
        let lanes: Vec<LaneStatistics> = lanes
            .iter()
            .map(|c| LaneStatistics {
                label: c.label.clone(),
                kind: c.kind.clone(),
                success: Proportion::new(c.successes, c.requests),
                first_attempt_success: Proportion::new(c.first_attempt_successes, c.requests),
            })
            .collect();
        let mut comparisons = Vec::new();
        for lane in lanes.iter().filter(|l| l.kind != "peer") {
            for peer in lanes.iter().filter(|l| l.kind == "peer") {
                let interval = newcombe_difference(&lane.success, &peer.success);
                comparisons.push(Comparison {
                    lane: lane.label.clone(),
                    peer: peer.label.clone(),
                    difference: lane.success.rate - peer.success.rate,
                    interval,
                    verdict: Verdict::of(&interval),
                    requests_to_distinguish: requests_to_distinguish(&lane.success, &peer.success),
                });
            }
        }
        Statistics {
            confidence: CONFIDENCE,
            proportion_method: "Wilson score interval",
            difference_method: "Newcombe's hybrid score interval (method 10) from the two Wilson intervals",
            repeats,
            lanes,
            comparisons,
        }
    }

    /// Requests per lane the intervals rest on: the smallest and the largest lane.
    pub fn requests_range(&self) -> (u64, u64) {
        let n = self.lanes.iter().map(|l| l.success.n);
        (n.clone().min().unwrap_or(0), n.max().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn statistics_compare_every_magnetar_lane_with_every_peer() {
        let lane = |label: &str, kind: &str, successes, requests| LaneCounts {
            label: label.into(),
            kind: kind.into(),
            requests,
            successes,
            first_attempt_successes: successes / 2,
        };
        let stats = Statistics::of(
            &[
                lane("magnetar", "magnetar", 990, 1000),
                lane("thompson", "magnetar", 950, 1000),
                lane("haproxy", "peer", 950, 1000),
                lane("nginx", "peer", 960, 1000),
            ],
            2,
        );
        let verdicts: Vec<(&str, &str, Verdict)> = stats
            .comparisons
            .iter()
            .map(|c| (c.lane.as_str(), c.peer.as_str(), c.verdict))
            .collect();
        // 99.0% against 95.0% and 96.0% over 1,000 requests each: outside the noise. 95.0%
        // against 95.0% and 96.0%: within it.
        assert_eq!(
            verdicts,
            [
                ("magnetar", "haproxy", Verdict::Better),
                ("magnetar", "nginx", Verdict::Better),
                ("thompson", "haproxy", Verdict::NotDistinguishable),
                ("thompson", "nginx", Verdict::NotDistinguishable),
            ]
        );
        assert!(close(stats.comparisons[0].difference, 0.04));
        assert_eq!(stats.lanes[0].first_attempt_success.successes, 495);
        assert_eq!(stats.requests_range(), (1000, 1000));
        assert_eq!(stats.repeats, 2);
    }
}
