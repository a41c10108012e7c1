//! Tags: which downstreams a request may go to.
//!
//! A downstream carries tags in the fleet (`"tags": ["region=eu", "tier=gold"]`, from
//! `config/workers.json`). A request may require tags with the header
//! `x-magnetar-tags: region=eu,tier=gold`, and a route may require them in `ROUTE_TAGS`
//! (`{"users": "region=eu"}`); a request needs both. The strategy then chooses only among the
//! downstreams that carry every required tag (through the veto); when none does, the router
//! answers 503 naming the tags. Learning is kept per (route, tag set) whenever the set leaves
//! out part of the fleet ([`learning_route`]), so what a strategy learned on the EU subset does
//! not steer it on the whole fleet.
//!
//! A tag is `key=value` or a bare `key`, each of letters, digits and `_ . -`, at most 64 bytes;
//! a request requires at most [`MAX_TAGS`].

use std::collections::HashMap;

use crate::arm::ArmId;
use crate::fleet::{Fleet, check_tag};

/// The header a request requires tags with.
pub const TAGS_HEADER: &str = "x-magnetar-tags";
/// The router variable of per-route tag rules.
pub const VARS: &[&str] = &["ROUTE_TAGS"];
/// Most tags a request may require.
pub const MAX_TAGS: usize = 16;
pub use crate::fleet::MAX_TAG_LEN;

/// Tags given in a header or a rule were not valid; the message names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("more than {MAX_TAGS} tags")]
    TooMany,
    #[error("tag {index} ({given:?}): {problem}")]
    Tag { index: usize, given: String, problem: &'static str },
    #[error("not a JSON object of route name to tags (\"region=eu,tier=gold\"): {0}")]
    Json(String),
    #[error("[{route:?}]: {source}")]
    Route { route: String, source: Box<TagError> },
}

/// A set of tags, sorted and without repeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TagSet(Vec<String>);

impl TagSet {
    /// Parses a comma-separated list (`region=eu, tier=gold`); empty means no requirement.
    pub fn parse(raw: &str) -> Result<TagSet, TagError> {
        let mut tags = Vec::new();
        for (index, tag) in raw.split(',').map(str::trim).enumerate() {
            if tag.is_empty() && raw.trim().is_empty() {
                break;
            }
            check_tag(tag).map_err(|problem| TagError::Tag {
                index,
                given: tag.chars().take(MAX_TAG_LEN + 1).collect(),
                problem,
            })?;
            tags.push(tag.to_owned());
            if tags.len() > MAX_TAGS {
                return Err(TagError::TooMany);
            }
        }
        tags.sort();
        tags.dedup();
        Ok(TagSet(tags))
    }

    /// No tag required.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Both sets' tags.
    pub fn union(&self, other: &TagSet) -> TagSet {
        let mut tags: Vec<String> = self.0.iter().chain(&other.0).cloned().collect();
        tags.sort();
        tags.dedup();
        TagSet(tags)
    }

    /// Whether a downstream with `tags` carries every tag of the set.
    pub fn matches(&self, tags: &[String]) -> bool {
        self.0.iter().all(|t| tags.contains(t))
    }

    /// The arms of `fleet` that do not carry every tag of the set (vetoed for every attempt).
    pub fn unmatched(&self, fleet: &Fleet) -> Vec<ArmId> {
        (0..fleet.len())
            .filter(|arm| fleet.get(*arm).is_some_and(|d| !self.matches(&d.tags)))
            .collect()
    }
}

impl std::fmt::Display for TagSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// Tags each route requires (`ROUTE_TAGS`: `{"users": "region=eu", "reports": "tier=gold"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTags(HashMap<String, TagSet>);

impl RouteTags {
    pub fn from_json(json: &str) -> Result<RouteTags, TagError> {
        let raw: HashMap<String, String> =
            serde_json::from_str(json).map_err(|e| TagError::Json(e.to_string()))?;
        let mut rules = HashMap::new();
        for (route, tags) in raw {
            let set = TagSet::parse(&tags)
                .map_err(|e| TagError::Route { route: route.clone(), source: Box::new(e) })?;
            rules.insert(route, set);
        }
        Ok(RouteTags(rules))
    }

    /// What `route` requires (nothing when no rule names it).
    pub fn of(&self, route: &str) -> TagSet {
        self.0.get(route).cloned().unwrap_or_default()
    }
}

/// The learning route of a request on `route` requiring `tags` that leave `unmatched` arms out:
/// the route itself when the whole fleet is a candidate, else `route` and the tags
/// (`users#region=eu`).
pub fn learning_route(route: &str, tags: &TagSet, unmatched: &[ArmId]) -> String {
    if unmatched.is_empty() { route.to_owned() } else { format!("{route}#{tags}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fleet() -> Fleet {
        Fleet::from_json(
            r#"[{"name":"a","url":"http://a","tags":["region=eu","tier=gold"]},
                {"name":"b","url":"http://b","tags":["region=eu"]},
                {"name":"c","url":"http://c","tags":["region=us","tier=gold"]}]"#,
        )
        .unwrap()
    }

    #[test]
    fn required_tags_restrict_the_candidates_exactly() {
        let f = fleet();
        let eu = TagSet::parse("region=eu").unwrap();
        assert_eq!(eu.unmatched(&f), [2]);
        let gold_eu = TagSet::parse(" tier=gold ,region=eu").unwrap();
        assert_eq!(gold_eu.to_string(), "region=eu,tier=gold");
        assert_eq!(gold_eu.unmatched(&f), [1, 2]);
        assert_eq!(TagSet::parse("region=ap").unwrap().unmatched(&f), [0, 1, 2]);
        assert!(TagSet::parse("").unwrap().unmatched(&f).is_empty());
        assert_eq!(learning_route("/service", &eu, &[2]), "/service#region=eu");
        assert_eq!(learning_route("/service", &TagSet::default(), &[]), "/service");
        let rule = RouteTags::from_json(r#"{"users": "tier=gold"}"#).unwrap();
        assert_eq!(rule.of("users").union(&eu).unmatched(&f), [1, 2]);
        assert!(rule.of("other").is_empty());
    }

    #[test]
    fn errors_name_the_entry() {
        let e = TagSet::parse("region=eu,tier gold").unwrap_err().to_string();
        assert!(e.starts_with("tag 1 (\"tier gold\")"), "{e}");
        assert!(TagSet::parse("a,,b").unwrap_err().to_string().starts_with("tag 1"));
        assert!(TagSet::parse("=x").is_err());
        assert!(TagSet::parse("k=").is_err());
        let many = (0..17).map(|i| format!("t{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(TagSet::parse(&many).unwrap_err(), TagError::TooMany);
        let e = RouteTags::from_json(r#"{"users": "re gion"}"#).unwrap_err().to_string();
        assert!(e.starts_with("[\"users\"]: tag 0"), "{e}");
        assert!(RouteTags::from_json("[1]").unwrap_err().to_string().starts_with("not a JSON"));
    }

    proptest! {
        /// Whatever the header holds, parsing answers; what it accepts is a valid, sorted,
        /// repeat-free set that parses back to itself, and the arms it leaves out are exactly
        /// those missing one of its tags.
        #[test]
        fn any_header_parses_or_is_refused(raw in "[a-z=,. _-]{0,40}") {
            if let Ok(set) = TagSet::parse(&raw) {
                prop_assert!(set.0.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(set.0.iter().all(|t| check_tag(t).is_ok()));
                prop_assert_eq!(TagSet::parse(&set.to_string()).unwrap(), set.clone());
                let f = fleet();
                for arm in set.unmatched(&f) {
                    prop_assert!(!set.matches(&f.get(arm).unwrap().tags));
                }
            }
        }
    }
}
