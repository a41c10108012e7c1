//! Work-request counters per client-chosen tag, so that several measurements can share one fleet
//! at the same time and still each get their own count.
//!
//! A client marks its requests with the [`TAG_HEADER`] header (the router, HAProxy and nginx
//! forward it unchanged); the downstream counts each work request under that tag as well as in
//! its overall [`Stats`]. The lab and the test-bed page run their lanes interleaved on one fleet
//! and tag each lane (`lab-<run>-<lane>`), so `GET /stats` tells how many attempts each lane cost
//! each downstream, with no reset in between. An isolate keeps at most [`MAX_TAGS`] tags; a new tag
//! beyond that evicts the one updated least recently. A tag that is empty, longer than
//! [`MAX_TAG_LEN`] or not printable ASCII is ignored (the request still counts overall).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Stats, Verdict};

/// Request header naming the tag a work request is counted under.
pub const TAG_HEADER: &str = "x-flaky-tag";
/// Most tags an isolate keeps.
pub const MAX_TAGS: usize = 64;
/// Longest accepted tag, bytes.
pub const MAX_TAG_LEN: usize = 96;

/// The tag in a header value, when it is acceptable.
pub fn valid_tag(value: &str) -> Option<&str> {
    let tag = value.trim();
    let printable = tag.bytes().all(|b| b.is_ascii_graphic());
    (!tag.is_empty() && tag.len() <= MAX_TAG_LEN && printable).then_some(tag)
}

/// Counters per tag, bounded to [`MAX_TAGS`].
#[derive(Clone, Debug, Default)]
pub struct TagCounts {
    /// tag → (sequence number of its last update, counters).
    tags: BTreeMap<String, (u64, Stats)>,
    seq: u64,
}

impl TagCounts {
    pub fn new() -> Self {
        TagCounts::default()
    }

    fn entry(&mut self, tag: &str) -> &mut Stats {
        self.seq += 1;
        if !self.tags.contains_key(tag) && self.tags.len() >= MAX_TAGS {
            let oldest = self.tags.iter().min_by_key(|(_, (seq, _))| *seq).map(|(t, _)| t.clone());
            if let Some(oldest) = oldest {
                self.tags.remove(&oldest);
            }
        }
        let slot = self.tags.entry(tag.to_owned()).or_default();
        slot.0 = self.seq;
        &mut slot.1
    }

    /// Counts a decided work request under `tag` (a raw header value; ignored when not valid).
    pub fn record(&mut self, tag: Option<&str>, verdict: &Verdict) {
        if let Some(tag) = tag.and_then(valid_tag) {
            self.entry(tag).record(verdict);
        }
    }

    /// Counts a work request answered 400 for bad configuration under `tag`.
    pub fn record_invalid(&mut self, tag: Option<&str>) {
        if let Some(tag) = tag.and_then(valid_tag) {
            self.entry(tag).record_invalid();
        }
    }

    /// The counters of one tag.
    pub fn get(&self, tag: &str) -> Option<Stats> {
        self.tags.get(tag).map(|(_, s)| *s)
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// `{"<tag>": {"requests": .., "successes": .., ...}, ...}`, for `/stats`.
    pub fn report(&self) -> Value {
        let map: Map<String, Value> = self
            .tags
            .iter()
            .map(|(tag, (_, stats))| {
                (tag.clone(), serde_json::to_value(stats).unwrap_or(Value::Null))
            })
            .collect();
        Value::Object(map)
    }

    /// Forgets every tag (`DELETE /stats`).
    pub fn reset(&mut self) {
        *self = TagCounts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Verdict = Verdict::Success { delay_ms: 0 };
    const FAIL: Verdict = Verdict::Failure { status: 500, delay_ms: 0 };

    #[test]
    fn counts_per_tag_and_ignores_bad_tags() {
        let mut t = TagCounts::new();
        t.record(Some("lab-1-thompson"), &OK);
        t.record(Some(" lab-1-thompson "), &FAIL);
        t.record(Some("lab-1-haproxy"), &FAIL);
        t.record_invalid(Some("lab-1-haproxy"));
        t.record(None, &OK);
        t.record(Some(""), &OK);
        t.record(Some("has space"), &OK);
        t.record(Some(&"x".repeat(MAX_TAG_LEN + 1)), &OK);
        assert_eq!(t.len(), 2);
        let ts = t.get("lab-1-thompson").unwrap();
        assert_eq!((ts.requests, ts.successes, ts.failures), (2, 1, 1));
        let hp = t.get("lab-1-haproxy").unwrap();
        assert_eq!((hp.requests, hp.failures, hp.invalid), (2, 1, 1));
        assert_eq!(t.report()["lab-1-thompson"]["successes"], 1);
        t.reset();
        assert!(t.is_empty());
    }

    #[test]
    fn beyond_the_bound_the_least_recently_updated_tag_goes() {
        let mut t = TagCounts::new();
        for i in 0..MAX_TAGS {
            t.record(Some(&format!("tag-{i}")), &OK);
        }
        // tag-0 is used again, so tag-1 is now the least recently updated.
        t.record(Some("tag-0"), &OK);
        t.record(Some("new"), &OK);
        assert_eq!(t.len(), MAX_TAGS);
        assert!(t.get("tag-1").is_none());
        assert_eq!(t.get("tag-0").map(|s| s.requests), Some(2));
        assert_eq!(t.get("new").map(|s| s.requests), Some(1));
    }
}
