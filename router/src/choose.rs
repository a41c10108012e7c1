//! Who chooses an attempt's downstream: the request's local strategy, or the learner's
//! `/recommendation` with a local fallback (used by the attempt race, [`crate::race`]).

use magnetar_core::config::Algo;
use magnetar_core::strategy::{ArmId, SelectContext, StrategyKind};

use crate::isolate::Isolate;
use crate::{learner, log};

/// Strategy the `learner` algo falls back to when the learner does not answer.
pub const LEARNER_FALLBACK: StrategyKind = StrategyKind::Thompson;

/// Picks the arm of the next attempt. Returns the local strategy that chose it (`None` when the
/// learner chose).
pub async fn choose(
    isolate: &Isolate,
    route: &str,
    algo: Algo,
    ctx: &SelectContext<'_>,
) -> Option<(ArmId, Option<StrategyKind>)> {
    match algo {
        Algo::Local(kind) => isolate.select(route, kind, ctx).map(|arm| (arm, Some(kind))),
        Algo::Learner => {
            if let Some(arm) = learner::recommend(isolate.config(), route, ctx.excluded).await {
                isolate.count(|c| c.learner_recommendations += 1);
                return Some((arm, None));
            }
            let fallbacks = isolate.tally(|c| &mut c.learner_fallbacks);
            log::sparse_warn(
                "learner gave no usable recommendation, local fallback",
                fallbacks,
                "",
            );
            isolate.select(route, LEARNER_FALLBACK, ctx).map(|arm| (arm, Some(LEARNER_FALLBACK)))
        }
    }
}
