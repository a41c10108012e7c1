//! The one error type of the learner's HTTP answers: a status, a Confluent-style `error_code`
//! and a message saying what was wrong with the request (never internal detail), rendered as
//! `{"error_code": N, "message": "..."}` by [`IntoResponse`]. `kind` is the label under which
//! the produce APIs count the refusal (`/stats` `rejected.by_kind`, `/metrics`
//! `magnetar_learner_ingest_errors_total{kind}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::RecommendError;

/// `Content-Type` of error answers unless the API gives its own (v2 produce does).
pub const JSON: &str = "application/json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    error_code: u32,
    message: String,
    content_type: &'static str,
    challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        error_code: u32,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            kind,
            error_code,
            message: message.into(),
            content_type: JSON,
            challenge: None,
        }
    }

    /// 404 for a path this mode does not serve.
    pub fn no_endpoint(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "no_endpoint", 40400, message)
    }

    /// The same error answered with another `Content-Type`.
    pub fn with_content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }

    /// Adds a `WWW-Authenticate` challenge (401 answers).
    pub fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn error_code(&self) -> u32 {
        self.error_code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.error_code, "message": self.message});
        let mut response =
            (self.status, [(header::CONTENT_TYPE, self.content_type)], body.to_string())
                .into_response();
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

impl From<RecommendError> for ApiError {
    fn from(e: RecommendError) -> Self {
        let code = match e {
            RecommendError::UnknownRoute(_) => 40403,
            RecommendError::AllExcluded => 40404,
        };
        ApiError::new(StatusCode::NOT_FOUND, "no_recommendation", code, e.to_string())
    }
}
