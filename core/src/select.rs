//! What a strategy is told about the attempt it chooses for. It lives below the strategies and
//! the retry plan (which builds it) so that neither imports the other for it.

use crate::arm::ArmId;
use crate::context::RequestContext;

/// Everything a strategy may look at to choose one attempt's downstream.
#[derive(Clone, Copy, Debug)]
pub struct SelectContext<'a> {
    /// Arms the caller vetoes for this attempt (already tried, ejected, ...).
    pub excluded: &'a [ArmId],
    /// 1-based attempt number within the request.
    pub attempt: u32,
    /// Caller's clock, milliseconds.
    pub now_ms: u64,
    /// Attempts the request has left, this one included (at least 1): what a strategy that
    /// plans the whole chain of attempts plans for.
    pub remaining: u32,
    /// The downstream of the previous attempt of this request when the caller allows this
    /// attempt to repeat it (it is then not in `excluded`); `None` otherwise.
    pub previous: Option<ArmId>,
    /// Time since the request arrived, ms (for objectives with a latency target).
    pub elapsed_ms: u64,
    /// What the edge knows about the request (contextual strategies); `None` when unknown.
    pub request: Option<&'a RequestContext>,
}

impl<'a> SelectContext<'a> {
    /// First attempt at `now_ms`, nothing excluded, no retry after it.
    pub fn first(now_ms: u64) -> Self {
        SelectContext::new(&[], 1, now_ms)
    }

    /// Attempt `attempt` at `now_ms` with `excluded` vetoed, as the last attempt of its request
    /// and with no repeat allowed; see [`remaining`](Self::remaining) and
    /// [`previous`](Self::previous) to say more.
    pub fn new(excluded: &'a [ArmId], attempt: u32, now_ms: u64) -> Self {
        SelectContext {
            excluded,
            attempt,
            now_ms,
            remaining: 1,
            previous: None,
            elapsed_ms: 0,
            request: None,
        }
    }

    /// The same context with `remaining` attempts left (this one included; at least 1).
    pub fn remaining(mut self, remaining: u32) -> Self {
        self.remaining = remaining.max(1);
        self
    }

    /// The same context allowing a repeat of `previous` (the previous attempt's downstream).
    pub fn previous(mut self, previous: Option<ArmId>) -> Self {
        self.previous = previous;
        self
    }

    /// The same context for a request that arrived `elapsed_ms` ago.
    pub fn elapsed(mut self, elapsed_ms: u64) -> Self {
        self.elapsed_ms = elapsed_ms;
        self
    }

    /// The same context for a request with this context.
    pub fn request(mut self, request: Option<&'a RequestContext>) -> Self {
        self.request = request;
        self
    }

    /// Whether `arm` is vetoed.
    pub fn is_excluded(&self, arm: ArmId) -> bool {
        self.excluded.contains(&arm)
    }
}
