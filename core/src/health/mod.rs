//! Passive health of the fleet, sans-io: which downstreams a router stops sending user requests
//! to, and how they come back.
//!
//! - [`phi`]: the phi accrual failure detector per downstream over the times between its
//!   successes (Hayashibara et al. 2004, Akka's formulation; threshold 8, 100 intervals, at
//!   least 5);
//! - consecutive-failure ejection with a growing ejection time (Envoy's outlier detection:
//!   5 consecutive failures; the n-th ejection in a row lasts n × 30 s, at most 300 s);
//! - the panic threshold (Envoy's `healthy_panic_threshold`, 50%): never more than
//!   `n − ⌈n × share⌉` downstreams are ejected; one that deserves ejection beyond that stays in
//!   (as `suspect`) and the fleet is in panic mode;
//! - readmission: when its ejection time is over a downstream is probed with a synthetic request
//!   before any user request goes to it again (a failed probe ejects it again, for longer);
//! - [`slow_start`]: a readmitted downstream's share ramps up over a window.
//!
//! What a downstream failed at is an attempt's [`Outcome`]: 5xx, timeouts and connection errors
//! count (Envoy's `consecutive_5xx` with locally originated failures); a 429 is neither a failure
//! nor a success here (the rate limiter handles it); a 4xx other than 429 is a success (the
//! downstream answered). The strategies see the result through the existing veto
//! ([`SelectContext::excluded`](crate::select::SelectContext)): [`FleetHealth::veto`] lists the
//! downstreams one attempt must not go to.

use rand::{Rng, RngCore};
use serde::Serialize;

use crate::Outcome;
use crate::arm::ArmId;
use crate::select::SelectContext;

pub mod config;
pub mod phi;
pub mod slow_start;

pub use config::{HealthConfig, HealthConfigError, VARS};
pub use phi::{PhiAccrual, PhiConfig};

/// Where a downstream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    /// Receives traffic.
    Healthy,
    /// Deserves ejection, but the panic threshold keeps it in: receives traffic.
    Suspect,
    /// Receives no traffic until `until_ms`.
    Ejected { until_ms: u64 },
    /// Ejection over; a probe is on its way (no traffic until it succeeds).
    Probing { since_ms: u64 },
    /// Readmitted at `since_ms`; its share ramps up over the slow-start window.
    Ramping { since_ms: u64 },
}

/// Why a downstream was ejected last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EjectReason {
    ConsecutiveFailures,
    Phi,
    ProbeFailed,
}

/// Counters of one downstream, for `/_magnetar/state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthCounters {
    /// User attempts that came back (any outcome).
    pub attempts: u64,
    /// Of those, failures (5xx, timeouts, connection errors).
    pub failures: u64,
    /// Failed user attempts that came back while the downstream was ejected or being probed:
    /// sent before the ejection, answered after it.
    pub failures_while_out: u64,
    pub ejections: u64,
    pub probes: u64,
    pub probe_failures: u64,
    pub readmissions: u64,
}

#[derive(Clone, Debug)]
struct DownstreamHealth {
    phase: Phase,
    consecutive_failures: u32,
    /// Ejections in a row (the multiplier of the ejection time).
    streak: u32,
    last_reason: Option<EjectReason>,
    detector: PhiAccrual,
    counters: HealthCounters,
}

/// The health of one router's fleet; arm `i` is the fleet's downstream `i`.
#[derive(Clone, Debug)]
pub struct FleetHealth {
    config: HealthConfig,
    arms: Vec<DownstreamHealth>,
}

fn is_failure(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::ServerError | Outcome::Timeout | Outcome::ConnectError)
}

impl FleetHealth {
    pub fn new(config: HealthConfig, arms: usize) -> Self {
        let fresh = DownstreamHealth {
            phase: Phase::Healthy,
            consecutive_failures: 0,
            streak: 0,
            last_reason: None,
            detector: PhiAccrual::new(config.phi),
            counters: HealthCounters::default(),
        };
        FleetHealth { arms: vec![fresh; arms], config }
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Most downstreams ejected at once: all but `⌈n × panic share⌉`.
    pub fn max_ejected(&self) -> usize {
        let n = self.arms.len();
        let kept = (n as f64 * self.config.panic_share - 1e-9).ceil().max(0.0) as usize;
        n.saturating_sub(kept)
    }

    fn out_count(&self) -> usize {
        self.arms
            .iter()
            .filter(|a| matches!(a.phase, Phase::Ejected { .. } | Phase::Probing { .. }))
            .count()
    }

    /// Whether a downstream deserves ejection beyond what the panic threshold allows.
    pub fn panic_mode(&self) -> bool {
        self.arms.iter().any(|a| a.phase == Phase::Suspect)
    }

    /// A user attempt to `arm` came back with `outcome` at `now_ms`.
    pub fn observe(&mut self, arm: ArmId, outcome: Outcome, now_ms: u64) {
        if !self.config.ejection {
            return;
        }
        let threshold = self.config.consecutive_failures;
        let Some(a) = self.arms.get_mut(arm) else { return };
        a.counters.attempts += 1;
        let out = matches!(a.phase, Phase::Ejected { .. } | Phase::Probing { .. });
        if outcome.is_success() {
            a.detector.heartbeat(now_ms);
            a.consecutive_failures = 0;
            if a.phase == Phase::Suspect {
                a.phase = Phase::Healthy;
            }
            return;
        }
        if !is_failure(outcome) {
            return;
        }
        a.counters.failures += 1;
        if out {
            a.counters.failures_while_out += 1;
            return;
        }
        a.consecutive_failures += 1;
        // φ needs a second failure in a row besides the silence: a downstream no request went
        // to for a while has a long silence behind it without having failed.
        let reason = if a.consecutive_failures >= threshold {
            EjectReason::ConsecutiveFailures
        } else if a.consecutive_failures >= 2 && a.detector.suspects(now_ms) {
            EjectReason::Phi
        } else {
            return;
        };
        self.eject(arm, reason, now_ms);
    }

    /// Ejects `arm` unless the panic threshold forbids it (then it becomes suspect).
    fn eject(&mut self, arm: ArmId, reason: EjectReason, now_ms: u64) {
        let room = self.out_count() < self.max_ejected();
        let (base, max) = (self.config.ejection_base_ms, self.config.ejection_max_ms);
        let Some(a) = self.arms.get_mut(arm) else { return };
        if !room {
            a.phase = Phase::Suspect;
            return;
        }
        a.streak = a.streak.saturating_add(1);
        let duration = base.saturating_mul(u64::from(a.streak)).min(max);
        a.phase = Phase::Ejected { until_ms: now_ms.saturating_add(duration) };
        a.last_reason = Some(reason);
        a.consecutive_failures = 0;
        a.counters.ejections += 1;
    }

    fn readmit(&mut self, arm: ArmId, now_ms: u64) {
        if let Some(a) = self.arms.get_mut(arm) {
            a.phase = Phase::Ramping { since_ms: now_ms };
            a.detector.restart(now_ms);
            a.consecutive_failures = 0;
            a.counters.readmissions += 1;
        }
    }

    /// Moves time on to `now_ms`: ejections that are over start their probe (returned: the
    /// caller sends one synthetic request to each and reports with [`probed`](Self::probed)),
    /// or, with probes off, readmit; probes unanswered for long are sent again; ramps that are
    /// over end.
    pub fn advance(&mut self, now_ms: u64) -> Vec<ArmId> {
        let mut probes = Vec::new();
        if !self.config.ejection {
            return probes;
        }
        // A probe whose answer never came (its isolate's background work was cut short).
        let stale_ms = self.config.probe_timeout_ms.saturating_mul(2).saturating_add(1_000);
        for arm in 0..self.arms.len() {
            match self.arms[arm].phase {
                Phase::Ejected { until_ms } if now_ms >= until_ms => {
                    if self.config.probe {
                        self.arms[arm].phase = Phase::Probing { since_ms: now_ms };
                        self.arms[arm].counters.probes += 1;
                        probes.push(arm);
                    } else {
                        self.readmit(arm, now_ms);
                    }
                }
                Phase::Probing { since_ms } if now_ms.saturating_sub(since_ms) >= stale_ms => {
                    self.arms[arm].phase = Phase::Probing { since_ms: now_ms };
                    self.arms[arm].counters.probes += 1;
                    probes.push(arm);
                }
                Phase::Ramping { since_ms }
                    if now_ms.saturating_sub(since_ms) >= self.config.slow_start_ms =>
                {
                    let a = &mut self.arms[arm];
                    a.phase = Phase::Healthy;
                    a.streak = a.streak.saturating_sub(1);
                }
                _ => {}
            }
        }
        probes
    }

    /// The probe of `arm` answered as expected (`ok`) or not, at `now_ms`.
    pub fn probed(&mut self, arm: ArmId, ok: bool, now_ms: u64) {
        let Some(a) = self.arms.get(arm) else { return };
        if !matches!(a.phase, Phase::Probing { .. }) {
            return;
        }
        if ok {
            self.readmit(arm, now_ms);
            return;
        }
        if let Some(a) = self.arms.get_mut(arm) {
            a.counters.probe_failures += 1;
            // Its own slot is taken already: it goes straight back out, for longer.
            a.phase = Phase::Healthy;
        }
        self.eject(arm, EjectReason::ProbeFailed, now_ms);
    }

    /// The downstreams one attempt at `now_ms` must not go to: the ejected and probed ones, and
    /// each ramping one with probability `1 − its slow-start factor`.
    pub fn veto(&self, now_ms: u64, rng: &mut dyn RngCore) -> Vec<ArmId> {
        let mut vetoed = Vec::new();
        if !self.config.ejection {
            return vetoed;
        }
        for (arm, a) in self.arms.iter().enumerate() {
            let out = match a.phase {
                Phase::Ejected { .. } | Phase::Probing { .. } => true,
                Phase::Ramping { since_ms } => {
                    let f = slow_start::factor(
                        now_ms.saturating_sub(since_ms),
                        self.config.slow_start_ms,
                    );
                    f < 1.0 && rng.random::<f64>() >= f
                }
                Phase::Healthy | Phase::Suspect => false,
            };
            if out {
                vetoed.push(arm);
            }
        }
        vetoed
    }

    /// Where `arm` stands.
    pub fn phase(&self, arm: ArmId) -> Option<Phase> {
        self.arms.get(arm).map(|a| a.phase)
    }

    /// A snapshot for `/_magnetar/state`; `names[i]` is arm `i`'s downstream.
    pub fn view(&self, now_ms: u64, names: &[&str]) -> HealthView {
        let downstreams: Vec<DownstreamView> = self
            .arms
            .iter()
            .enumerate()
            .map(|(arm, a)| DownstreamView {
                name: names.get(arm).map_or_else(|| arm.to_string(), |n| (*n).to_owned()),
                phase: a.phase,
                phi: a.detector.phi(now_ms),
                consecutive_failures: a.consecutive_failures,
                last_reason: a.last_reason,
                slow_start_factor: match a.phase {
                    Phase::Ramping { since_ms } => slow_start::factor(
                        now_ms.saturating_sub(since_ms),
                        self.config.slow_start_ms,
                    ),
                    Phase::Healthy | Phase::Suspect => 1.0,
                    Phase::Ejected { .. } | Phase::Probing { .. } => 0.0,
                },
                counters: a.counters,
            })
            .collect();
        let ejected = downstreams
            .iter()
            .filter(|d| matches!(d.phase, Phase::Ejected { .. } | Phase::Probing { .. }))
            .map(|d| d.name.clone())
            .collect();
        HealthView {
            ejection: self.config.ejection,
            panic_mode: self.panic_mode(),
            max_ejected: self.max_ejected(),
            ejected,
            downstreams,
        }
    }
}

/// The veto of one attempt: what the request's plan excludes (`excluded`) and what health vetoes
/// (`vetoed`), in a fleet of `arms`. When together they would leave no downstream, the plan's own
/// veto is kept alone: a request is never refused for health reasons only (the panic threshold
/// says the same for the fleet as a whole).
pub fn combine(excluded: &[ArmId], vetoed: &[ArmId], arms: usize) -> Vec<ArmId> {
    let mut all = excluded.to_vec();
    for arm in vetoed {
        if !all.contains(arm) {
            all.push(*arm);
        }
    }
    let left = (0..arms).any(|arm| !all.contains(&arm));
    if left { all } else { excluded.to_vec() }
}

/// `ctx` with `excluded` (from [`combine`]) as its veto; a previous downstream that is now
/// vetoed may not be repeated either.
pub fn with_veto<'a>(ctx: SelectContext<'a>, excluded: &'a [ArmId]) -> SelectContext<'a> {
    let previous = ctx.previous.filter(|p| !excluded.contains(p));
    SelectContext { excluded, previous, ..ctx }
}

/// What `/_magnetar/state` shows under `health`.
#[derive(Clone, Debug, Serialize)]
pub struct HealthView {
    /// Whether ejection is on (`HEALTH_EJECTION`).
    pub ejection: bool,
    /// A downstream deserves ejection but the panic threshold keeps it in.
    pub panic_mode: bool,
    pub max_ejected: usize,
    /// Names of the downstreams that get no user requests now (ejected or being probed).
    pub ejected: Vec<String>,
    pub downstreams: Vec<DownstreamView>,
}

/// One downstream in [`HealthView`].
#[derive(Clone, Debug, Serialize)]
pub struct DownstreamView {
    pub name: String,
    #[serde(flatten)]
    pub phase: Phase,
    pub phi: f64,
    pub consecutive_failures: u32,
    pub last_reason: Option<EjectReason>,
    /// Share factor now: 1 when healthy, the ramp's while ramping, 0 while out.
    pub slow_start_factor: f64,
    #[serde(flatten)]
    pub counters: HealthCounters,
}

#[cfg(test)]
mod tests;
