//! What the edge knows about a request before it chooses a downstream, for contextual strategies
//! ([`lin_ucb`](crate::strategy::lin_ucb), [`lin_thompson`](crate::strategy::lin_thompson)).
//!
//! [`RequestFacts`] are the raw facts: the colo and country Cloudflare put in `request.cf`, the
//! method, a path class, the body size and the caller. [`RequestFacts::from_edge`] reads them at
//! the router's boundary and refuses a malformed caller header (a 400 naming the header); the
//! `cf` values come from Cloudflare, not the client, and anything that is not a colo code (three
//! letters) or a country code (two letters or digits, e.g. `XX`, `T1`) reads as unknown.
//!
//! [`RequestContext`] holds the facts and their encoding, computed once per request: a feature
//! vector of fixed dimension [`DIM`] = 16, all entries 0 or 1:
//!
//! | index  | feature                                                                  |
//! |--------|--------------------------------------------------------------------------|
//! | 0      | bias (always 1)                                                          |
//! | 1      | method is not safe (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`)      |
//! | 2      | body of 1 byte to 16 KiB                                                 |
//! | 3      | body over 16 KiB (an empty body sets neither)                            |
//! | 4..10  | path class, hashed one-hot into 6 buckets                                |
//! | 10..12 | colo, hashed one-hot into 2 buckets (none when unknown)                  |
//! | 12..14 | country, hashed one-hot into 2 buckets (none when unknown)               |
//! | 14..16 | caller, hashed one-hot into 2 buckets (none when absent)                 |
//!
//! Hashed one-hot ("the hashing trick", Weinberger et al., "Feature hashing for large scale
//! multitask learning", ICML 2009) keeps the dimension fixed whatever the number of paths, colos,
//! countries and callers: values that share a bucket are learned together. The hash is 64-bit
//! FNV-1a of the field's name and value, the same on every platform, so a router and the
//! simulator encode a request alike. The small dimension keeps a contextual selection cheap (a
//! 16 × 16 matrix per downstream). The colo gets few buckets because one isolate runs in one
//! colo: it tells requests apart only in the learner's fleet-wide view.
//!
//! The **path class** is the path's first two segments, lowercased, with identifier-like segments
//! (all digits, or 16 and more hex digits and dashes, as UUIDs) replaced by `:id`:
//! `/api/users/42` and `/api/users/7` are both `/api/users`, `/eu/items` is `/eu/items`, `/` is `/`.
//! Each segment is cut at [`MAX_SEGMENT`] bytes.

use serde::{Deserialize, Serialize};

/// Headers that name the caller, in order of precedence (the first one present wins).
pub const CLIENT_ID_HEADERS: [&str; 2] = ["x-magnetar-client-id", "x-caller-id"];

/// Dimension of the feature vector.
pub const DIM: usize = 16;
/// A request's encoding.
pub type Features = [f64; DIM];

/// Largest body of the "small" bucket, bytes.
pub const SMALL_BODY_BYTES: u64 = 16 * 1024;
/// Longest caller id accepted, bytes.
pub const MAX_CALLER_BYTES: usize = 128;
/// Longest path segment kept in a path class, bytes.
pub const MAX_SEGMENT: usize = 32;

const METHOD: usize = 1;
const BODY_SMALL: usize = 2;
const BODY_LARGE: usize = 3;
const PATH: (usize, usize) = (4, 6);
const COLO: (usize, usize) = (10, 2);
const COUNTRY: (usize, usize) = (12, 2);
const CALLER: (usize, usize) = (14, 2);

/// The caller header could not be read (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("header {header}: must be at most {MAX_CALLER_BYTES} bytes, got {len}")]
    CallerTooLong { header: &'static str, len: usize },
    #[error("header {header}: must be visible ASCII characters only (no spaces or controls)")]
    CallerCharacters { header: &'static str },
}

/// The raw facts about one request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFacts {
    /// Cloudflare's colo (IATA code, uppercase), when known.
    pub colo: Option<String>,
    /// The client's country (ISO 3166-1 alpha-2, uppercase, or Cloudflare's `XX` / `T1`).
    pub country: Option<String>,
    /// The HTTP method, uppercase.
    pub method: String,
    /// The path class (see the module docs).
    pub path_class: String,
    /// The request body's size, bytes.
    pub body_bytes: u64,
    /// The caller id (`x-magnetar-client-id`, else `X-Caller-ID`).
    pub caller: Option<String>,
}

impl RequestFacts {
    /// Reads the facts at the edge. `header(name)` returns a request header (lowercase name);
    /// `colo` and `country` are `request.cf`'s. Only the caller header can be refused.
    pub fn from_edge(
        method: &str,
        path: &str,
        body_bytes: u64,
        colo: Option<&str>,
        country: Option<&str>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<RequestFacts, ContextError> {
        let mut caller = None;
        for name in CLIENT_ID_HEADERS {
            if let Some(value) = header(name) {
                caller = Some(check_caller(name, value)?);
                break;
            }
        }
        Ok(RequestFacts {
            colo: colo.and_then(|c| code(c, 3, |b| b.is_ascii_alphabetic())),
            country: country.and_then(|c| code(c, 2, |b| b.is_ascii_alphanumeric())),
            method: method.trim().to_ascii_uppercase(),
            path_class: path_class(path),
            body_bytes,
            caller: caller.filter(|c| !c.is_empty()),
        })
    }

    /// The feature vector of these facts (see the module docs for the layout).
    pub fn encode(&self) -> Features {
        let mut x = [0.0; DIM];
        x[0] = 1.0;
        if !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE") {
            x[METHOD] = 1.0;
        }
        match self.body_bytes {
            0 => {}
            1..=SMALL_BODY_BYTES => x[BODY_SMALL] = 1.0,
            _ => x[BODY_LARGE] = 1.0,
        }
        let mut one_hot = |(start, buckets): (usize, usize), field: &str, value: &str| {
            x[start + (fnv1a(field, value) % buckets as u64) as usize] = 1.0;
        };
        one_hot(PATH, "path", &self.path_class);
        if let Some(colo) = &self.colo {
            one_hot(COLO, "colo", colo);
        }
        if let Some(country) = &self.country {
            one_hot(COUNTRY, "country", country);
        }
        if let Some(caller) = &self.caller {
            one_hot(CALLER, "caller", caller);
        }
        x
    }
}

/// A request's facts and their encoding, computed once.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestContext {
    facts: RequestFacts,
    features: Features,
}

impl RequestContext {
    /// Encodes `facts`.
    pub fn new(facts: RequestFacts) -> RequestContext {
        let features = facts.encode();
        RequestContext { facts, features }
    }

    /// The raw facts.
    pub fn facts(&self) -> &RequestFacts {
        &self.facts
    }

    /// The feature vector.
    pub fn features(&self) -> &Features {
        &self.features
    }
}

/// The encoding of a request nothing is known about: the bias alone.
pub const UNKNOWN: Features = {
    let mut x = [0.0; DIM];
    x[0] = 1.0;
    x
};

/// The features of `request`, or [`UNKNOWN`].
pub fn features_of(request: Option<&RequestContext>) -> &Features {
    request.map_or(&UNKNOWN, RequestContext::features)
}

fn check_caller(header: &'static str, value: String) -> Result<String, ContextError> {
    if value.len() > MAX_CALLER_BYTES {
        return Err(ContextError::CallerTooLong { header, len: value.len() });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ContextError::CallerCharacters { header });
    }
    Ok(value)
}

fn code(raw: &str, len: usize, ok: impl Fn(u8) -> bool) -> Option<String> {
    (raw.len() == len && raw.bytes().all(ok)).then(|| raw.to_ascii_uppercase())
}

/// The path class of `path` (see the module docs).
pub fn path_class(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .take(2)
        .map(|s| {
            let id = s.bytes().all(|b| b.is_ascii_digit())
                || (s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
            if id {
                ":id".to_owned()
            } else {
                let mut end = s.len().min(MAX_SEGMENT);
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s[..end].to_ascii_lowercase()
            }
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// 64-bit FNV-1a of `field`, a separator and `value`.
fn fnv1a(field: &str, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in field.bytes().chain([0xff]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The path-class bucket `path_class` falls in (`0..6`), for tests and scenarios that need two
/// classes apart.
pub fn path_bucket(path_class: &str) -> usize {
    (fnv1a("path", path_class) % PATH.1 as u64) as usize
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn path_classes_keep_two_segments_and_hide_ids() {
        assert_eq!(path_class("/api/users/42"), "/api/users");
        assert_eq!(path_class("/API/Users/7?x=1"), "/api/users");
        assert_eq!(path_class("/orders/123/items"), "/orders/:id");
        assert_eq!(path_class("/o/3fa85f64-5717-4562-b3fc-2c963f66afa6"), "/o/:id");
        assert_eq!(path_class("/"), "/");
        assert_eq!(path_class(""), "/");
        assert_eq!(path_class(&format!("/{}", "é".repeat(40))), format!("/{}", "é".repeat(16)));
    }

    #[test]
    fn the_encoding_follows_the_documented_layout() {
        let facts = RequestFacts {
            colo: Some("FRA".into()),
            country: Some("DE".into()),
            method: "POST".into(),
            path_class: "/eu/items".into(),
            body_bytes: 20_000,
            caller: Some("svc-a".into()),
        };
        let x = RequestContext::new(facts.clone()).features().to_owned();
        assert_eq!(x[0], 1.0);
        assert_eq!((x[METHOD], x[BODY_SMALL], x[BODY_LARGE]), (1.0, 0.0, 1.0));
        for (start, len) in [PATH, COLO, COUNTRY, CALLER] {
            assert_eq!(x[start..start + len].iter().sum::<f64>(), 1.0, "{start}");
        }
        assert_eq!(x.iter().sum::<f64>(), 7.0);
        assert_eq!(x[PATH.0 + path_bucket("/eu/items")], 1.0);
        let bare = RequestFacts { method: "GET".into(), path_class: "/".into(), ..facts };
        let bare = RequestFacts { colo: None, country: None, caller: None, body_bytes: 0, ..bare };
        assert_eq!(bare.encode().iter().sum::<f64>(), 2.0, "bias and path class only");
        assert_eq!(features_of(None), &UNKNOWN);
    }

    #[test]
    fn the_edge_reads_cf_codes_and_checks_the_caller() {
        let headers = |h: &str| (h == "x-caller-id").then(|| "svc-b".to_owned());
        let f =
            RequestFacts::from_edge("get", "/a/b/c", 5, Some("fra"), Some("de"), headers).unwrap();
        assert_eq!(f.colo.as_deref(), Some("FRA"));
        assert_eq!(f.country.as_deref(), Some("DE"));
        assert_eq!((f.method.as_str(), f.path_class.as_str()), ("GET", "/a/b"));
        assert_eq!(f.caller.as_deref(), Some("svc-b"));
        let f = RequestFacts::from_edge("GET", "/", 0, Some("FRANK"), Some("D"), none).unwrap();
        assert_eq!((f.colo, f.country, f.caller), (None, None, None));
        let both = |h: &str| Some(format!("{h}-value"));
        let f = RequestFacts::from_edge("GET", "/", 0, None, None, both).unwrap();
        assert_eq!(f.caller.as_deref(), Some("x-magnetar-client-id-value"));
        let long = |_: &str| Some("a".repeat(129));
        let err = RequestFacts::from_edge("GET", "/", 0, None, None, long).unwrap_err();
        assert_eq!(err, ContextError::CallerTooLong { header: "x-magnetar-client-id", len: 129 });
        let spaced = |h: &str| (h == "x-caller-id").then(|| "a b".to_owned());
        let err = RequestFacts::from_edge("GET", "/", 0, None, None, spaced).unwrap_err();
        assert!(err.to_string().starts_with("header x-caller-id: "), "{err}");
    }

    proptest! {
        #[test]
        fn any_request_reads_or_is_refused_naming_the_header(
            method in ".{0,12}",
            path in ".{0,80}",
            body in any::<u64>(),
            colo in proptest::option::of(".{0,5}"),
            country in proptest::option::of(".{0,4}"),
            caller in proptest::option::of(".{0,140}"),
        ) {
            let header = |h: &str| (h == "x-caller-id").then(|| caller.clone()).flatten();
            match RequestFacts::from_edge(&method, &path, body, colo.as_deref(), country.as_deref(), header) {
                Ok(facts) => {
                    let x = RequestContext::new(facts.clone()).features().to_owned();
                    prop_assert_eq!(x[0], 1.0);
                    prop_assert!(x.iter().all(|v| *v == 0.0 || *v == 1.0));
                    prop_assert_eq!(x[PATH.0..PATH.0 + PATH.1].iter().sum::<f64>(), 1.0);
                    prop_assert!(facts.path_class.starts_with('/'));
                    prop_assert!(facts.path_class.len() <= 2 * (MAX_SEGMENT + 1));
                    let ok_caller = caller.as_deref().is_some_and(|c| !c.is_empty());
                    prop_assert_eq!(facts.caller.is_some(), ok_caller);
                    prop_assert!(facts.colo.iter().all(|c| c.len() == 3));
                    prop_assert!(facts.country.iter().all(|c| c.len() == 2));
                }
                Err(e) => {
                    prop_assert!(e.to_string().starts_with("header x-caller-id: "), "{}", e);
                    let c = caller.unwrap_or_default();
                    prop_assert!(c.len() > MAX_CALLER_BYTES || !c.bytes().all(|b| b.is_ascii_graphic()));
                }
            }
        }
    }
}
