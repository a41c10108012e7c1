//! What a client asked the router for, read from the query string, headers and JSON body.
//!
//! - strategy: `?algo=`, else header `x-magnetar-algo`, else JSON body field `algo`, else the
//!   configured default;
//! - attempt budget: `?max_attempts=`, else header `x-magnetar-max-attempts`; a request may lower
//!   the configured budget (1 = no retry), never raise it;
//! - caller: header `x-magnetar-client-id`, else `X-Caller-ID` (telemetry only).
//!
//! A body sent as `application/json` must be valid JSON (the router replays it to downstreams, and
//! a client that meant to choose a strategy in it should hear that it was unreadable).

use crate::config::Algo;
use crate::strategy::UnknownStrategy;

pub const ALGO_HEADER: &str = "x-magnetar-algo";
pub const MAX_ATTEMPTS_HEADER: &str = "x-magnetar-max-attempts";
pub const CLIENT_ID_HEADERS: [&str; 2] = ["x-magnetar-client-id", "x-caller-id"];

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
/// `content_type` and `body` are the request's.
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
    let body_algo = if is_json && !body.is_empty() {
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
