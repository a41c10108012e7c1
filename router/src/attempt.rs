//! One attempt: send the buffered client request to one downstream under a deadline.
//!
//! URL targets go through the global `fetch`, service-binding targets through the binding's
//! `Fetcher`; either way the request carries a [`Deadline`]'s abort signal, so a downstream that
//! does not answer in time is cut off, not merely ignored. The deadline covers the whole answer,
//! body included: a downstream that sends its headers and then trickles its body is cut off like
//! one that never answers, and the client only ever gets a complete answer.
//!
//! Hop-by-hop headers (`magnetar_core::forward`) are dropped in both directions; the forwarding
//! headers (`X-Forwarded-For`, `Forwarded`, `X-Forwarded-Proto`) are set on every attempt.

use magnetar_core::fleet::{Downstream, Target};
use magnetar_core::forward::{Forwarding, HopByHop};
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::deadline::Deadline;

/// Request headers not forwarded besides the hop-by-hop ones: those the runtime sets itself, and
/// the forwarding headers, which [`Outgoing::forwarding`] replaces.
const NOT_FORWARDED: &[&str] =
    &["host", "content-length", "x-forwarded-for", "forwarded", "x-forwarded-proto"];

/// Header telling a downstream which attempt of the request it serves (1-based).
pub const ATTEMPT_HEADER: &str = "x-magnetar-attempt";

/// A downstream's complete answer, read within the attempt's deadline.
pub struct Answer {
    pub status: u16,
    /// The end-to-end headers (hop-by-hop ones dropped), mutable.
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Answer {
    /// The answer as a response to the client.
    pub fn into_response(self) -> worker::Result<Response> {
        let response = if self.body.is_empty() {
            Response::empty()?
        } else {
            Response::from_bytes(self.body)?
        };
        Ok(response.with_status(self.status).with_headers(self.headers))
    }
}

/// What one attempt produced, before classification.
pub enum AttemptResult {
    /// The downstream answered with a status and a complete body.
    Answered(Answer),
    /// No complete answer before the deadline.
    TimedOut,
    /// The subrequest failed before a status arrived: nothing reached the origin, as far as the
    /// router can tell.
    Failed(String),
    /// The status arrived, then the body failed: the origin had the request.
    BrokenBody(u16, String),
}

/// The client request, buffered once and replayed on each attempt.
pub struct Outgoing {
    pub method: Method,
    /// Path and query of the client request, e.g. `/service?x=1`.
    pub path_and_query: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// The forwarding headers every attempt carries.
    pub forwarding: Forwarding,
}

fn hop_by_hop(headers: &Headers) -> HopByHop {
    let connection = headers.get("connection").ok().flatten();
    HopByHop::from_connection(connection.as_deref())
}

/// A mutable copy of `headers` without its hop-by-hop ones (headers of fetched responses are
/// immutable).
pub fn end_to_end_headers(headers: &Headers) -> Headers {
    let hop = hop_by_hop(headers);
    let copy = Headers::new();
    for (name, value) in headers.entries() {
        if !hop.contains(&name) {
            let _ = copy.append(&name, &value);
        }
    }
    copy
}

fn forwarded_headers(out: &Outgoing, attempt: u32) -> Headers {
    let hop = hop_by_hop(&out.headers);
    let headers = Headers::new();
    for (name, value) in out.headers.entries() {
        let lower = name.to_ascii_lowercase();
        if hop.contains(&lower)
            || NOT_FORWARDED.contains(&lower.as_str())
            || lower.starts_with("cf-")
        {
            continue;
        }
        // Names and values come from a valid request, so `set` cannot fail on them.
        let _ = headers.set(&name, &value);
    }
    let forwarding = &out.forwarding;
    if let Some(xff) = &forwarding.x_forwarded_for {
        let _ = headers.set("x-forwarded-for", xff);
    }
    if let Some(forwarded) = &forwarding.forwarded {
        let _ = headers.set("forwarded", forwarded);
    }
    let _ = headers.set("x-forwarded-proto", &forwarding.x_forwarded_proto);
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
    init.with_method(out.method.clone()).with_headers(forwarded_headers(out, attempt));
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
    send_under(env, downstream, out, attempt, Deadline::new(timeout_ms)).await
}

/// Like [`send`], under a `deadline` the caller made (and may abort early through its
/// [`Canceller`](crate::deadline::Canceller)); an aborted attempt ends as [`AttemptResult::Failed`].
pub async fn send_under(
    env: &Env,
    downstream: &Downstream,
    out: &Outgoing,
    attempt: u32,
    deadline: Deadline,
) -> AttemptResult {
    let sent = match &downstream.target {
        Target::Url(base) => {
            let url = format!("{base}{}", out.path_and_query);
            let request = match build_request(&url, out, attempt, &deadline) {
                Ok(r) => r,
                Err(e) => return AttemptResult::Failed(e.to_string()),
            };
            deadline.run(complete(Fetch::Request(request).send())).await
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
            deadline.run(complete(fetcher.fetch_request(request))).await
        }
    };
    sent.unwrap_or(AttemptResult::TimedOut)
}

/// The answer of `fetch`, body and all.
async fn complete(
    fetch: impl std::future::Future<Output = worker::Result<Response>>,
) -> AttemptResult {
    let mut response = match fetch.await {
        Ok(response) => response,
        Err(e) => return AttemptResult::Failed(e.to_string()),
    };
    let status = response.status_code();
    match response.bytes().await {
        Ok(body) => AttemptResult::Answered(Answer {
            status,
            headers: end_to_end_headers(response.headers()),
            body,
        }),
        Err(e) => AttemptResult::BrokenBody(status, e.to_string()),
    }
}
