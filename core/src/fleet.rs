//! The fleet: which downstreams a router spreads traffic over.
//!
//! Parsed once from JSON (the router's `FLEET` variable, generated from `config/workers.json` by
//! `scripts/fleet.py`) into typed values. Every error names the offending field, e.g.
//! `downstreams[2].url: must start with http:// or https://`.
//!
//! ```json
//! [{"name": "downstream-1", "url": "http://127.0.0.1:8801", "weight": 1, "tags": ["local"]},
//!  {"name": "payments", "service": "PAYMENTS"}]
//! ```
//!
//! A downstream is reached either by URL (external origins, and `wrangler dev` locally) or by a
//! service binding (Workers on the same Cloudflare account, where a plain `fetch` to a
//! `*.workers.dev` URL of the same account is refused).

use serde::Deserialize;

use crate::arm::ArmId;

/// Default weight of a downstream when the config gives none.
pub const DEFAULT_WEIGHT: f64 = 1.0;
/// Most downstreams a fleet may list.
pub const MAX_DOWNSTREAMS: usize = 1024;

/// Longest tag of a downstream (or a request's required tag).
pub const MAX_TAG_LEN: usize = 64;

fn valid_part(part: &str) -> bool {
    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Checks one tag (`key=value` or `key`).
pub fn check_tag(tag: &str) -> Result<(), &'static str> {
    if tag.len() > MAX_TAG_LEN {
        return Err("longer than 64 bytes");
    }
    let ok = match tag.split_once('=') {
        Some((key, value)) => valid_part(key) && valid_part(value),
        None => valid_part(tag),
    };
    if ok { Ok(()) } else { Err("expected key=value of letters, digits, _ . -") }
}

/// How the router reaches a downstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Plain HTTP(S) `fetch` to this base URL.
    Url(String),
    /// A service binding of this name in the router's environment.
    Service(String),
}

/// One member of the fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct Downstream {
    pub name: String,
    pub target: Target,
    pub weight: f64,
    pub tags: Vec<String>,
}

/// The validated fleet; arm `i` is `downstreams[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    downstreams: Vec<Downstream>,
}

/// The fleet configuration was not valid. The message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("fleet is not valid JSON: {0}")]
    Json(String),
    #[error("fleet is empty: list at least one downstream")]
    Empty,
    #[error("fleet lists {0} downstreams, at most {MAX_DOWNSTREAMS} are allowed")]
    TooLarge(usize),
    #[error("downstreams[{index}].{field}: {problem}")]
    Field { index: usize, field: &'static str, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDownstream {
    name: Option<String>,
    url: Option<String>,
    service: Option<String>,
    weight: Option<f64>,
    #[serde(default)]
    tags: Vec<String>,
}

impl Fleet {
    /// Parses and validates a JSON array of downstreams.
    pub fn from_json(json: &str) -> Result<Fleet, FleetError> {
        let raw: Vec<RawDownstream> =
            serde_json::from_str(json).map_err(|e| FleetError::Json(e.to_string()))?;
        if raw.is_empty() {
            return Err(FleetError::Empty);
        }
        if raw.len() > MAX_DOWNSTREAMS {
            return Err(FleetError::TooLarge(raw.len()));
        }
        let mut downstreams: Vec<Downstream> = Vec::with_capacity(raw.len());
        for (index, d) in raw.into_iter().enumerate() {
            let field = |field: &'static str, problem: &str| FleetError::Field {
                index,
                field,
                problem: problem.to_owned(),
            };
            let name = d.name.ok_or_else(|| field("name", "missing"))?;
            let name = name.trim().to_owned();
            if name.is_empty() {
                return Err(field("name", "must not be empty"));
            }
            if downstreams.iter().any(|other| other.name == name) {
                return Err(field("name", &format!("{name:?} is listed twice")));
            }
            let target = match (d.url, d.service) {
                (Some(_), Some(_)) => {
                    return Err(field("url", "give either url or service, not both"));
                }
                (None, None) => return Err(field("url", "missing (or give service)")),
                (Some(url), None) => {
                    let url = url.trim().trim_end_matches('/').to_owned();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(field("url", "must start with http:// or https://"));
                    }
                    Target::Url(url)
                }
                (None, Some(service)) => {
                    let ok = !service.is_empty()
                        && service.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ok {
                        return Err(field("service", "must be a binding name like DOWNSTREAM_1"));
                    }
                    Target::Service(service)
                }
            };
            let weight = d.weight.unwrap_or(DEFAULT_WEIGHT);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(field("weight", "must be a positive number"));
            }
            for (i, tag) in d.tags.iter().enumerate() {
                check_tag(tag)
                    .map_err(|problem| field("tags", &format!("[{i}] {tag:?}: {problem}")))?;
            }
            downstreams.push(Downstream { name, target, weight, tags: d.tags });
        }
        Ok(Fleet { downstreams })
    }

    /// The downstreams, in arm order.
    pub fn downstreams(&self) -> &[Downstream] {
        &self.downstreams
    }

    /// Number of downstreams (arms).
    pub fn len(&self) -> usize {
        self.downstreams.len()
    }

    /// Always false for a parsed fleet; present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.downstreams.is_empty()
    }

    /// The downstream of an arm.
    pub fn get(&self, arm: ArmId) -> Option<&Downstream> {
        self.downstreams.get(arm)
    }

    /// The arm of a downstream name.
    pub fn arm_of(&self, name: &str) -> Option<ArmId> {
        self.downstreams.iter().position(|d| d.name == name)
    }

    /// Downstream names in arm order.
    pub fn names(&self) -> Vec<&str> {
        self.downstreams.iter().map(|d| d.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_service_bindings() {
        let fleet = Fleet::from_json(
            r#"[{"name":"a","url":"http://127.0.0.1:8801/","tags":["x"]},
                {"name":"b","service":"DOWNSTREAM_B","weight":2.5}]"#,
        )
        .unwrap();
        assert_eq!(fleet.len(), 2);
        assert_eq!(fleet.get(0).unwrap().target, Target::Url("http://127.0.0.1:8801".into()));
        assert_eq!(fleet.get(1).unwrap().target, Target::Service("DOWNSTREAM_B".into()));
        assert_eq!(fleet.get(1).unwrap().weight, 2.5);
        assert_eq!(fleet.arm_of("b"), Some(1));
        assert_eq!(fleet.names(), ["a", "b"]);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[]", "fleet is empty"),
            ("{", "not valid JSON"),
            (r#"[{"url":"http://x"}]"#, "downstreams[0].name: missing"),
            (r#"[{"name":"a","url":"ftp://x"}]"#, "downstreams[0].url: must start with"),
            (r#"[{"name":"a"}]"#, "downstreams[0].url: missing"),
            (r#"[{"name":"a","url":"http://x","service":"S"}]"#, "either url or service"),
            (r#"[{"name":"a","service":"bad-name"}]"#, "downstreams[0].service"),
            (r#"[{"name":"a","url":"http://x","weight":0}]"#, "downstreams[0].weight"),
            (
                r#"[{"name":"a","url":"http://x"},{"name":"a","url":"http://y"}]"#,
                "downstreams[1].name",
            ),
            (r#"[{"name":"a","url":"http://x","colour":1}]"#, "unknown field"),
            (
                r#"[{"name":"a","url":"http://x","tags":["eu","re gion=x"]}]"#,
                "downstreams[0].tags: [1]",
            ),
        ];
        for (json, expected) in cases {
            let err = Fleet::from_json(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
