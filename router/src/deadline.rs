//! Deadlines for subrequests: an `AbortController` whose signal rides on the request, raced
//! against a `Delay`.
//!
//! Dropping a fetch future does not stop the subrequest in the Workers runtime: the connection
//! stays open and keeps counting against the isolate's limit of simultaneous subrequests. So
//! every subrequest of the router (attempts, learner calls, telemetry) carries the signal of a
//! [`Deadline`], and [`Deadline::run`] aborts it when the time is up, whether the request went
//! through the global `fetch` or a service binding.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{Either, select};
use worker::{AbortController, AbortSignal, Delay, Request};

/// Runs `fut` until it completes or `timeout_ms` passes; `None` on timeout. Does not abort
/// anything: use [`Deadline`] for subrequests.
pub async fn race<T>(fut: impl Future<Output = T>, timeout_ms: u64) -> Option<T> {
    let fut = std::pin::pin!(fut);
    let delay = Delay::from(Duration::from_millis(timeout_ms));
    match select(fut, delay).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

/// One subrequest's deadline.
pub struct Deadline {
    controller: Rc<RefCell<Option<AbortController>>>,
    signal: AbortSignal,
    timeout_ms: u64,
}

/// Aborts a [`Deadline`]'s subrequest before its time is up (a hedge answered first).
#[derive(Clone)]
pub struct Canceller(Rc<RefCell<Option<AbortController>>>);

impl Canceller {
    /// Aborts the subrequest if it is still running (a no-op once it finished or was aborted).
    pub fn abort(&self) {
        if let Some(controller) = self.0.borrow_mut().take() {
            controller.abort();
        }
    }
}

impl Deadline {
    /// A deadline `timeout_ms` from when [`Deadline::run`] starts.
    pub fn new(timeout_ms: u64) -> Self {
        let controller = AbortController::default();
        let signal = controller.signal();
        Deadline { controller: Rc::new(RefCell::new(Some(controller))), signal, timeout_ms }
    }

    /// A handle that aborts this deadline's subrequest early.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.controller.clone())
    }

    /// `request` with this deadline's abort signal attached (the same request otherwise).
    pub fn attach(&self, request: &Request) -> worker::Result<Request> {
        let init = web_sys::RequestInit::new();
        init.set_signal(Some(&*self.signal));
        let inner = web_sys::Request::new_with_request_and_init(request.inner(), &init)?;
        Ok(Request::from(inner))
    }

    /// Runs `fut` (the subrequest, and reading its body if the caller needs it) until it
    /// completes or the deadline passes; on timeout aborts the attached requests and returns
    /// `None`.
    pub async fn run<T>(self, fut: impl Future<Output = T>) -> Option<T> {
        let result = race(fut, self.timeout_ms).await;
        if result.is_none() {
            self.canceller().abort();
        } else {
            // Finished: nothing left to abort.
            self.controller.borrow_mut().take();
        }
        result
    }
}
