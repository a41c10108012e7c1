//! The request's context for contextual strategies: read once per request from `request.cf`
//! (colo, country), the method, the path, the body's size and the caller header
//! (`x-magnetar-client-id`, else `X-Caller-ID`). Everything it decides is in
//! `magnetar_core::context`; this only reads the Worker's request.

use magnetar_core::context::{ContextError, RequestContext, RequestFacts};
use worker::Request;
use worker::worker_sys::ext::RequestExt;

/// The context of `req` (path `path`, body of `body_bytes`); an error names a malformed caller
/// header (answered with 400).
pub fn of(
    req: &Request,
    path: &str,
    body_bytes: usize,
    header: impl Fn(&str) -> Option<String>,
) -> Result<RequestContext, ContextError> {
    // `cf` is absent outside Cloudflare (and partly filled by `wrangler dev`): unknown then.
    let cf = req.inner().cf();
    let colo = cf.as_ref().and_then(|cf| cf.colo().ok());
    let country = cf.as_ref().and_then(|cf| cf.country().ok().flatten());
    let facts = RequestFacts::from_edge(
        &req.inner().method(),
        path,
        body_bytes as u64,
        colo.as_deref(),
        country.as_deref(),
        header,
    )?;
    Ok(RequestContext::new(facts))
}
