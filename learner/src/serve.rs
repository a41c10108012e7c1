//! The HTTP server loop: what keeps a client from holding the learner.
//!
//! - **Header-read timeout** ([`ServerLimits::header_read_timeout`]): a connection that has not
//!   sent a whole request head in time is closed (hyper's `header_read_timeout`), so half-sent
//!   headers (slowloris) cost a connection for seconds, not forever.
//! - **Connection limit** ([`ServerLimits::max_connections`]): beyond it, new connections are
//!   closed at once.
//! - **Request timeout** ([`ServerLimits::request_timeout`]): a request (body included) not
//!   answered in time gets 408.
//! - **Concurrency limit** ([`ServerLimits::max_concurrent_requests`]): when that many requests
//!   are in flight, the next is answered 503 with `Retry-After: 1` at once instead of queueing
//!   (tower's `ConcurrencyLimit` behind `LoadShed`), so a flood cannot build a backlog in front
//!   of `/recommendation`.
//! - **Shutdown deadline** ([`ServerLimits::shutdown_timeout`]): on shutdown the listener
//!   closes, connections finish their requests, and whatever is still open after the deadline
//!   is dropped, so one stalled client cannot hold a SIGTERM.
//!
//! Services receive their I/O: `serve(listener, router, limits, shutdown)`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tracing::{debug, info, warn};

use crate::error::ApiError;

/// A connection that has not sent a whole request head within this time is closed.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 5_000;
/// A request (its body included) not answered within this time gets 408.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Requests in flight at once; the next one is answered 503 with `Retry-After`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;
/// Open connections at once; further ones are closed on accept.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;
/// How long shutdown waits for open connections before it drops them.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 10_000;
/// How long and how much a client may take (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_timeout: Duration::from_millis(DEFAULT_SHUTDOWN_TIMEOUT_MS),
        }
    }
}

/// The answer when every request slot is taken.
async fn overloaded(error: tower::BoxError) -> Response {
    let (status, kind, code, message) = if error.is::<tower::load_shed::error::Overloaded>() {
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded", 50300, "too many requests in flight; retry")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "internal", 50000, "internal error")
    };
    let mut response = ApiError::new(status, kind, code, message).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then drains the
/// connections for at most `limits.shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let service = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(limits.max_concurrent_requests)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .service(router);
    let service = TowerToHyperService::new(service);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            debug!(max = limits.max_connections, "connection limit reached, closing a new one");
            continue;
        };
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => info!("connections drained"),
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            warn!(deadline = ?limits.shutdown_timeout, "shutdown deadline passed, closing the connections still open");
        }
    }
}
