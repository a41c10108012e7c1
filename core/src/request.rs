//! What a client asked the router for, read from the query string, headers and JSON body.
//!
//! - strategy: `?algo=`, else header `x-magnetar-algo`, else JSON body field `algo`, else the
//!   configured default;
//! - attempt budget: `?max_attempts=`, else header `x-magnetar-max-attempts`; a request may lower
//!   the configured budget (1 = no retry), never raise it;
//! - caller: header `x-magnetar-client-id`, else `X-Caller-ID` (telemetry only).
//!
//! A body sent as `application/json` of at most [`ALGO_SCAN_LIMIT_BYTES`] must be valid JSON (a
//! client that meant to choose a strategy in it should hear that it was unreadable); a larger body
//! is not parsed at all, so its size costs the router no CPU or memory beyond the buffer.
//!
//! Bodies are bounded ([`BodyLimit`]): at most `MAX_BODY_BYTES` (1 MiB by default, see the
//! configuration), checked against `Content-Length` before reading and against the bytes read while
//! reading; a larger body is refused with 413 before it fills the isolate's memory.

use crate::config::Algo;
use crate::strategy::UnknownStrategy;

pub const ALGO_HEADER: &str = "x-magnetar-algo";
pub const MAX_ATTEMPTS_HEADER: &str = "x-magnetar-max-attempts";
pub use crate::context::CLIENT_ID_HEADERS;

/// JSON bodies up to this size are scanned for the `algo` field; larger ones are not parsed.
pub const ALGO_SCAN_LIMIT_BYTES: usize = 64 * 1024;

/// A request body over the configured limit (answered with 413).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body of {declared} bytes (Content-Length) exceeds the limit of {limit} bytes")]
    DeclaredTooLarge { declared: u64, limit: u64 },
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("Content-Length must be a whole number of bytes, got {0:?}")]
    BadContentLength(String),
}

/// Counts a request body against its limit as it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyLimit {
    limit: u64,
    read: u64,
}

impl BodyLimit {
    /// A limit of `limit` bytes for one body, checked first against the request's
    /// `Content-Length` header (when it has one).
    pub fn new(limit: u64, content_length: Option<&str>) -> Result<BodyLimit, BodyError> {
        if let Some(raw) = content_length {
            let declared: u64 =
                raw.trim().parse().map_err(|_| BodyError::BadContentLength(raw.to_owned()))?;
            if declared > limit {
                return Err(BodyError::DeclaredTooLarge { declared, limit });
            }
        }
        Ok(BodyLimit { limit, read: 0 })
    }

    /// Accounts for `len` more bytes read; an error as soon as the total passes the limit (a
    /// client may send more than it declared, or declare nothing).
    pub fn take(&mut self, len: usize) -> Result<(), BodyError> {
        self.read = self.read.saturating_add(len as u64);
        if self.read > self.limit {
            return Err(BodyError::TooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Bytes read so far.
    pub fn read(&self) -> u64 {
        self.read
    }
}

/// Whether an `Authorization` header value is `Bearer <expected>` (scheme in any case). The
/// tokens are compared in constant time for a given length, so a caller cannot find the token
/// byte by byte from response times.
pub fn bearer_matches(authorization: Option<&str>, expected: &str) -> bool {
    let Some((scheme, token)) = authorization.map(str::trim).and_then(|h| h.split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(token.trim(), expected)
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The client's choices for one request; `None` means "use the configured default".
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RequestOptions {
    pub algo: Option<Algo>,
    pub max_attempts: Option<u32>,
    pub caller_id: Option<String>,
}

/// Why a request's options were refused (answered with 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("{0}")]
    UnknownAlgo(#[from] UnknownStrategy),
    #[error("body field algo must be a string")]
    AlgoNotString,
    #[error("max_attempts must be a whole number from 1 to {max}, got {given:?}")]
    BadMaxAttempts { given: String, max: u32 },
}

/// The first value of `name` in a raw query string (no leading `?`), percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the client's options. `header(name)` returns a request header (lowercase name);
/// `content_type` and `body` are the request's (the body is only parsed when it is JSON of at
/// most [`ALGO_SCAN_LIMIT_BYTES`]).
pub fn parse_request_options(
    query: &str,
    header: impl Fn(&str) -> Option<String>,
    content_type: Option<&str>,
    body: &[u8],
    max_allowed: u32,
) -> Result<RequestOptions, RequestError> {
    let is_json = content_type
        .map(|ct| {
            ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    let body_algo = if is_json && !body.is_empty() && body.len() <= ALGO_SCAN_LIMIT_BYTES {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| RequestError::BadJson(e.to_string()))?;
        match value.get("algo") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(RequestError::AlgoNotString),
        }
    } else {
        None
    };
    let algo = query_param(query, "algo")
        .or_else(|| header(ALGO_HEADER))
        .or(body_algo)
        .map(|name| name.parse::<Algo>())
        .transpose()?;

    let max_attempts = query_param(query, "max_attempts")
        .or_else(|| header(MAX_ATTEMPTS_HEADER))
        .map(|raw| match raw.trim().parse::<u32>() {
            Ok(n) if (1..=max_allowed).contains(&n) => Ok(n),
            _ => Err(RequestError::BadMaxAttempts { given: raw, max: max_allowed }),
        })
        .transpose()?;

    let caller_id = CLIENT_ID_HEADERS.iter().find_map(|h| header(h)).filter(|c| !c.is_empty());
    Ok(RequestOptions { algo, max_attempts, caller_id })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategy::StrategyKind;

    fn no_headers(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn query_beats_header_beats_body() {
        let headers = |h: &str| (h == ALGO_HEADER).then(|| "random".to_owned());
        let body = br#"{"algo":"learner"}"#;
        let ct = Some("application/json; charset=utf-8");
        let o = parse_request_options("algo=round_robin", headers, ct, body, 3).unwrap();
        assert_eq!(o.algo, Some(Algo::Local(StrategyKind::RoundRobin)));
        let o = parse_request_options("", headers, ct, body, 3).unwrap();
        assert_eq!(o.algo, Some(Algo::Local(StrategyKind::Random)));
        let o = parse_request_options("", no_headers, ct, body, 3).unwrap();
        assert_eq!(o.algo, Some(Algo::Learner));
        let o = parse_request_options("", no_headers, None, body, 3).unwrap();
        assert_eq!(o.algo, None, "a non-JSON body is not inspected");
    }

    #[test]
    fn max_attempts_may_only_lower_the_budget() {
        let o = parse_request_options("max_attempts=1", no_headers, None, b"", 3).unwrap();
        assert_eq!(o.max_attempts, Some(1));
        let headers = |h: &str| (h == MAX_ATTEMPTS_HEADER).then(|| "2".to_owned());
        assert_eq!(parse_request_options("", headers, None, b"", 3).unwrap().max_attempts, Some(2));
        for bad in ["max_attempts=0", "max_attempts=4", "max_attempts=x"] {
            let err = parse_request_options(bad, no_headers, None, b"", 3).unwrap_err();
            assert!(err.to_string().contains("from 1 to 3"), "{bad}: {err}");
        }
    }

    #[test]
    fn malformed_requests_get_clear_errors() {
        let err =
            parse_request_options("", no_headers, Some("application/json"), b"{", 3).unwrap_err();
        assert!(err.to_string().starts_with("request body is not valid JSON"), "{err}");
        let err = parse_request_options("algo=best", no_headers, None, b"", 3).unwrap_err();
        assert!(err.to_string().contains("valid strategies: round_robin"), "{err}");
        let err =
            parse_request_options("", no_headers, Some("application/json"), br#"{"algo":1}"#, 3)
                .unwrap_err();
        assert_eq!(err, RequestError::AlgoNotString);
    }

    #[test]
    fn large_json_bodies_are_not_parsed() {
        let mut big = br#"{"algo":"round_robin","pad":""#.to_vec();
        big.resize(ALGO_SCAN_LIMIT_BYTES + 1, b'x');
        let o = parse_request_options("", no_headers, Some("application/json"), &big, 3).unwrap();
        assert_eq!(o.algo, None, "a body over the scan limit is neither parsed nor refused");
        big.truncate(ALGO_SCAN_LIMIT_BYTES - 2);
        big.extend_from_slice(b"\"}");
        let o = parse_request_options("", no_headers, Some("application/json"), &big, 3).unwrap();
        assert_eq!(o.algo, Some(Algo::Local(StrategyKind::RoundRobin)));
    }

    #[test]
    fn body_limit_checks_the_declared_length_then_the_bytes_read() {
        let err = BodyLimit::new(1024, Some("1025")).unwrap_err();
        assert_eq!(err, BodyError::DeclaredTooLarge { declared: 1025, limit: 1024 });
        assert!(err.to_string().contains("exceeds the limit of 1024 bytes"), "{err}");
        assert!(matches!(BodyLimit::new(1024, Some("ten")), Err(BodyError::BadContentLength(_))));
        // Declared within the limit (or not at all), but more arrives: refused while reading.
        for declared in [Some("10"), None] {
            let mut limit = BodyLimit::new(1024, declared).unwrap();
            assert_eq!(limit.take(1000), Ok(()));
            assert_eq!(limit.take(24), Ok(()));
            assert_eq!(limit.read(), 1024);
            assert_eq!(limit.take(1), Err(BodyError::TooLarge { limit: 1024 }));
        }
    }

    #[test]
    fn bearer_tokens_must_match_exactly() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(bearer_matches(Some(" bearer   s3cret "), "s3cret"));
        for wrong in [None, Some(""), Some("Bearer"), Some("Bearer s3cre"), Some("Bearer s3cret!")]
        {
            assert!(!bearer_matches(wrong, "s3cret"), "{wrong:?}");
        }
        assert!(!bearer_matches(Some("Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("s3cret"), "s3cret"));
    }

    #[test]
    fn caller_id_comes_from_either_header() {
        let headers = |h: &str| (h == "x-caller-id").then(|| "svc-a".to_owned());
        let o = parse_request_options("", headers, None, b"", 3).unwrap();
        assert_eq!(o.caller_id.as_deref(), Some("svc-a"));
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param("a=1&algo=round%5Frobin&b", "algo").as_deref(), Some("round_robin"));
        assert_eq!(query_param("b", "b").as_deref(), Some(""));
        assert_eq!(query_param("x=%zz%4", "x").as_deref(), Some("%zz%4"));
        assert_eq!(query_param("", "algo"), None);
    }

    proptest! {
        #[test]
        fn parser_never_panics(query in ".{0,64}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_request_options(&query, no_headers, Some("application/json"), &body, 3);
        }
    }
}
