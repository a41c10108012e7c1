//! The router's side of tags (`magnetar_core::tags`): what a request requires (its
//! `x-magnetar-tags` header and its route's `ROUTE_TAGS` rule), the downstreams that leaves out
//! (vetoed on every attempt, whatever health says), the learning route, and the refusals: 400
//! naming the header when it is malformed, 503 naming the tags when no downstream carries them.

use magnetar_core::config::RouterConfig;
use magnetar_core::strategy::ArmId;
use magnetar_core::tags::{self, TAGS_HEADER, TagError, TagSet};
use serde_json::json;
use worker::{Response, Result};

use crate::control;

/// What a request requires.
pub struct Required {
    pub tags: TagSet,
    /// Arms that do not carry every required tag.
    pub unmatched: Vec<ArmId>,
}

/// Why a request cannot be served for its tags.
pub enum Refusal {
    BadHeader(TagError),
    NoMatch(TagSet),
}

impl Refusal {
    /// The answer to the client.
    pub fn response(&self) -> Result<Response> {
        match self {
            Refusal::BadHeader(e) => {
                control::error(400, "bad_request", format!("{TAGS_HEADER}: {e}"))
            }
            Refusal::NoMatch(tags) => {
                let body = json!({
                    "error": "no_matching_downstream",
                    "message": format!("no downstream carries the tags {tags}"),
                    "tags": tags.to_string(),
                });
                Ok(Response::from_json(&body)?.with_status(503))
            }
        }
    }
}

/// The tags a request on `route` with header value `header` requires, or why it is refused.
pub fn required(
    config: &RouterConfig,
    route: &str,
    header: Option<&str>,
) -> std::result::Result<Required, Refusal> {
    let asked = TagSet::parse(header.unwrap_or("")).map_err(Refusal::BadHeader)?;
    let tags = asked.union(&config.route_tags.of(route));
    let unmatched = tags.unmatched(&config.fleet);
    if unmatched.len() == config.fleet.len() {
        return Err(Refusal::NoMatch(tags));
    }
    Ok(Required { tags, unmatched })
}

impl Required {
    /// The learning route (see [`tags::learning_route`]).
    pub fn learning_route(&self, route: &str) -> String {
        tags::learning_route(route, &self.tags, &self.unmatched)
    }

    /// The plan's `excluded` and the arms these tags leave out.
    pub fn veto(&self, excluded: &[ArmId]) -> Vec<ArmId> {
        let mut all = excluded.to_vec();
        all.extend(self.unmatched.iter().filter(|arm| !excluded.contains(arm)));
        all
    }
}
