//! Routes from configuration: which learning route a request path belongs to.
//!
//! The router keeps learning state per route, and so does the learner. When routes were raw
//! paths, any client could create routes (and evict real ones) by sending new paths. With
//! `ROUTES` configured, a path belongs to the first pattern that matches it, and every other
//! path to the one default route ([`DEFAULT_ROUTE`]), so the set of routes is fixed by the
//! deployment:
//!
//! ```json
//! [{"pattern": "/api/users/:id", "route": "users"}, {"pattern": "/static/*", "route": "assets"}]
//! ```
//!
//! A pattern is a path of `/`-separated segments: a literal matches itself, `:name` matches any
//! one non-empty segment, and a final `*` matches whatever follows (nothing included). The query
//! string is not part of the path. Without `ROUTES` the path itself is the route (the local
//! stack and the lab give every lane a route of its own that way), bounded per isolate by the
//! router's least-recently-used cap.

use serde::Deserialize;

/// The route of every path no pattern matches.
pub const DEFAULT_ROUTE: &str = "default";
/// Most patterns a configuration may hold.
pub const MAX_PATTERNS: usize = 256;
/// Longest route name.
pub const MAX_ROUTE_NAME: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    segments: Vec<Segment>,
    route: String,
}

/// The configured routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routes {
    patterns: Vec<Pattern>,
}

/// `ROUTES` could not be read; the message names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("not a JSON list of {{\"pattern\", \"route\"}}: {0}")]
    Json(String),
    #[error("more than {MAX_PATTERNS} patterns")]
    TooMany,
    #[error("[{index}].pattern: {problem}")]
    Pattern { index: usize, problem: String },
    #[error("[{index}].route: {problem}")]
    Route { index: usize, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    pattern: String,
    route: String,
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn parse_pattern(raw: &str) -> Result<Vec<Segment>, String> {
    if !raw.starts_with('/') {
        return Err(format!("must start with /, got {raw:?}"));
    }
    let parts: Vec<&str> = segments(raw).collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        out.push(match *part {
            "*" if i + 1 == parts.len() => Segment::Rest,
            "*" => return Err("* may only end a pattern".into()),
            p if p.starts_with(':') && p.len() > 1 => Segment::Param,
            p if p.starts_with(':') => return Err("a parameter needs a name (:id)".into()),
            p => Segment::Literal(p.to_owned()),
        });
    }
    Ok(out)
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_ROUTE_NAME {
        return Err(format!("must be 1 to {MAX_ROUTE_NAME} characters, got {}", name.len()));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c)) {
        return Err(format!("may hold only letters, digits and - _ . / :, got {name:?}"));
    }
    Ok(())
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        let mut parts = segments(path);
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Param => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

impl Routes {
    /// Parses `ROUTES`.
    pub fn from_json(json: &str) -> Result<Routes, RouteError> {
        let entries: Vec<Entry> =
            serde_json::from_str(json).map_err(|e| RouteError::Json(e.to_string()))?;
        if entries.len() > MAX_PATTERNS {
            return Err(RouteError::TooMany);
        }
        let mut patterns = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let segments = parse_pattern(entry.pattern.trim())
                .map_err(|problem| RouteError::Pattern { index, problem })?;
            valid_name(&entry.route).map_err(|problem| RouteError::Route { index, problem })?;
            patterns.push(Pattern { segments, route: entry.route });
        }
        Ok(Routes { patterns })
    }

    /// The route of `path` (no query string): the first matching pattern's, else
    /// [`DEFAULT_ROUTE`].
    pub fn resolve(&self, path: &str) -> &str {
        self.patterns.iter().find(|p| p.matches(path)).map_or(DEFAULT_ROUTE, |p| &p.route)
    }

    /// Every route a request can be given, the default one last.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for p in &self.patterns {
            if !names.contains(&p.route.as_str()) {
                names.push(&p.route);
            }
        }
        names.push(DEFAULT_ROUTE);
        names
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn routes() -> Routes {
        Routes::from_json(
            r#"[{"pattern": "/api/users/:id", "route": "users"},
                {"pattern": "/api/users/:id/orders/:order", "route": "orders"},
                {"pattern": "/static/*", "route": "assets"},
                {"pattern": "/service", "route": "service"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn paths_resolve_to_the_first_matching_pattern_else_the_default() {
        let r = routes();
        for (path, route) in [
            ("/api/users/42", "users"),
            ("/api/users/42/", "users"),
            ("/api/users/42/orders/7", "orders"),
            ("/api/users", DEFAULT_ROUTE),
            ("/api/users/42/orders", DEFAULT_ROUTE),
            ("/static", "assets"),
            ("/static/css/site.css", "assets"),
            ("/service", "service"),
            ("/service/lane-1", DEFAULT_ROUTE),
            ("/", DEFAULT_ROUTE),
            ("", DEFAULT_ROUTE),
        ] {
            assert_eq!(r.resolve(path), route, "{path}");
        }
        assert_eq!(r.names(), ["users", "orders", "assets", "service", DEFAULT_ROUTE]);
    }

    #[test]
    fn errors_name_the_entry() {
        let cases = [
            (r#"{"a": 1}"#, "not a JSON list"),
            (r#"[{"pattern": "api", "route": "x"}]"#, "[0].pattern: must start with /"),
            (r#"[{"pattern": "/a/*/b", "route": "x"}]"#, "[0].pattern: * may only end"),
            (r#"[{"pattern": "/a/:", "route": "x"}]"#, "[0].pattern: a parameter needs a name"),
            (r#"[{"pattern": "/a", "route": "x"}, {"pattern": "/b", "route": ""}]"#, "[1].route"),
            (r#"[{"pattern": "/a", "route": "has space"}]"#, "[0].route: may hold only"),
            (r#"[{"pattern": "/a", "route": "x", "extra": 1}]"#, "unknown field"),
        ];
        for (json, expected) in cases {
            let err = Routes::from_json(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    proptest! {
        /// Whatever the path, it lands on one of the configured routes.
        #[test]
        fn every_path_resolves_to_a_configured_route(path in "[/a-z0-9:*%.]{0,40}") {
            let r = routes();
            let route = r.resolve(&path);
            prop_assert!(r.names().contains(&route), "{} -> {}", path, route);
        }
    }
}
