//! One attempt: send the buffered client request to one downstream under a deadline.
//!
//! URL targets go through the global `fetch`, service-binding targets through the binding's
//! `Fetcher`; either way the request carries a [`Deadline`]'s abort signal, so a downstream that
//! does not answer in time is cut off, not merely ignored.

use magnetar_core::fleet::{Downstream, Target};
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::deadline::Deadline;

/// Headers not forwarded to downstreams: hop-by-hop headers, and those the runtime sets itself.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Header telling a downstream which attempt of the request it serves (1-based).
pub const ATTEMPT_HEADER: &str = "x-magnetar-attempt";

/// What one attempt produced, before classification.
pub enum AttemptResult {
    /// The downstream answered with a status.
    Answered(Response),
    /// No answer before the deadline.
    TimedOut,
    /// The subrequest failed before a status arrived.
    Failed(String),
}

/// The client request, buffered once and replayed on each attempt.
pub struct Outgoing {
    pub method: Method,
    /// Path and query of the client request, e.g. `/service?x=1`.
    pub path_and_query: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A mutable copy of `headers` (headers of fetched responses are immutable).
pub fn copy_headers(headers: &Headers) -> Headers {
    let copy = Headers::new();
    for (name, value) in headers.entries() {
        let _ = copy.append(&name, &value);
    }
    copy
}

fn forwarded_headers(client: &Headers, attempt: u32) -> Headers {
    let headers = Headers::new();
    for (name, value) in client.entries() {
        let lower = name.to_ascii_lowercase();
        if NOT_FORWARDED.contains(&lower.as_str()) || lower.starts_with("cf-") {
            continue;
        }
        // Names and values come from a valid request, so `set` cannot fail on them.
        let _ = headers.set(&name, &value);
    }
    let _ = headers.set(ATTEMPT_HEADER, &attempt.to_string());
    headers
}

fn build_request(
    url: &str,
    out: &Outgoing,
    attempt: u32,
    deadline: &Deadline,
) -> worker::Result<Request> {
    let mut init = RequestInit::new();
    init.with_method(out.method.clone()).with_headers(forwarded_headers(&out.headers, attempt));
    if !out.body.is_empty() && !matches!(out.method, Method::Get | Method::Head) {
        init.with_body(Some(js_sys::Uint8Array::from(out.body.as_slice()).into()));
    }
    deadline.attach(&Request::new_with_init(url, &init)?)
}

/// Sends attempt number `attempt` of `out` to `downstream`, giving up after `timeout_ms`.
pub async fn send(
    env: &Env,
    downstream: &Downstream,
    out: &Outgoing,
    attempt: u32,
    timeout_ms: u64,
) -> AttemptResult {
    let deadline = Deadline::new(timeout_ms);
    let sent = match &downstream.target {
        Target::Url(base) => {
            let url = format!("{base}{}", out.path_and_query);
            let request = match build_request(&url, out, attempt, &deadline) {
                Ok(r) => r,
                Err(e) => return AttemptResult::Failed(e.to_string()),
            };
            deadline.run(Fetch::Request(request).send()).await
        }
        Target::Service(binding) => {
            let fetcher = match env.service(binding) {
                Ok(f) => f,
                Err(e) => return AttemptResult::Failed(format!("service binding {binding}: {e}")),
            };
            // The host is ignored by a service binding; the path and query are what matter.
            let url =
                format!("https://{}.service{}", binding.to_ascii_lowercase(), out.path_and_query);
            let request = match build_request(&url, out, attempt, &deadline) {
                Ok(r) => r,
                Err(e) => return AttemptResult::Failed(e.to_string()),
            };
            deadline.run(fetcher.fetch_request(request)).await
        }
    };
    match sent {
        Some(Ok(response)) => AttemptResult::Answered(response),
        Some(Err(e)) => AttemptResult::Failed(e.to_string()),
        None => AttemptResult::TimedOut,
    }
}
