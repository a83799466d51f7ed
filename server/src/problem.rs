//! RFC 9457 problem details. Every error the server sends is one of these, with a stable `type` URI
//! that clients may switch on (the status code alone is ambiguous: 409 is both "key in use" in
//! the idempotency draft and "conflict" in general HTTP usage).

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// Prefix of every problem `type` URI. The URIs are identifiers; they need not resolve.
pub const PROBLEM_BASE: &str = "https://outbox-sync.dev/problems/";

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemType {
    MalformedJson,
    InvalidRequest,
    InvalidIdempotencyKey,
    InvalidClientId,
    InvalidPrecondition,
    InvalidCursor,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    IdempotencyKeyInUse,
    Gone,
    VersionConflict,
    PayloadTooLarge,
    BatchTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    RateLimited,
    InternalError,
    ServiceUnavailable,
}

impl ProblemType {
    pub const ALL: [ProblemType; 19] = [
        ProblemType::MalformedJson,
        ProblemType::InvalidRequest,
        ProblemType::InvalidIdempotencyKey,
        ProblemType::InvalidClientId,
        ProblemType::InvalidPrecondition,
        ProblemType::InvalidCursor,
        ProblemType::Forbidden,
        ProblemType::NotFound,
        ProblemType::MethodNotAllowed,
        ProblemType::IdempotencyKeyInUse,
        ProblemType::Gone,
        ProblemType::VersionConflict,
        ProblemType::PayloadTooLarge,
        ProblemType::BatchTooLarge,
        ProblemType::UnsupportedMediaType,
        ProblemType::IdempotencyKeyReused,
        ProblemType::RateLimited,
        ProblemType::InternalError,
        ProblemType::ServiceUnavailable,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            ProblemType::MalformedJson => "malformed-json",
            ProblemType::InvalidRequest => "invalid-request",
            ProblemType::InvalidIdempotencyKey => "invalid-idempotency-key",
            ProblemType::InvalidClientId => "invalid-client-id",
            ProblemType::InvalidPrecondition => "invalid-precondition",
            ProblemType::InvalidCursor => "invalid-cursor",
            ProblemType::Forbidden => "forbidden",
            ProblemType::NotFound => "not-found",
            ProblemType::MethodNotAllowed => "method-not-allowed",
            ProblemType::IdempotencyKeyInUse => "idempotency-key-in-use",
            ProblemType::Gone => "gone",
            ProblemType::VersionConflict => "version-conflict",
            ProblemType::PayloadTooLarge => "payload-too-large",
            ProblemType::BatchTooLarge => "batch-too-large",
            ProblemType::UnsupportedMediaType => "unsupported-media-type",
            ProblemType::IdempotencyKeyReused => "idempotency-key-reused",
            ProblemType::RateLimited => "rate-limited",
            ProblemType::InternalError => "internal-error",
            ProblemType::ServiceUnavailable => "service-unavailable",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemType::MalformedJson => "Malformed JSON",
            ProblemType::InvalidRequest => "Invalid request",
            ProblemType::InvalidIdempotencyKey => "Invalid Idempotency-Key",
            ProblemType::InvalidClientId => "Invalid Outbox-Client-Id",
            ProblemType::InvalidPrecondition => "Invalid precondition header",
            ProblemType::InvalidCursor => "Invalid cursor",
            ProblemType::Forbidden => "Forbidden",
            ProblemType::NotFound => "Not found",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::IdempotencyKeyInUse => "Idempotency key in use",
            ProblemType::Gone => "Document deleted",
            ProblemType::VersionConflict => "Version conflict",
            ProblemType::PayloadTooLarge => "Payload too large",
            ProblemType::BatchTooLarge => "Batch too large",
            ProblemType::UnsupportedMediaType => "Unsupported media type",
            ProblemType::IdempotencyKeyReused => "Idempotency key reused",
            ProblemType::RateLimited => "Too many requests",
            ProblemType::InternalError => "Internal server error",
            ProblemType::ServiceUnavailable => "Service unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ProblemType::MalformedJson
            | ProblemType::InvalidRequest
            | ProblemType::InvalidIdempotencyKey
            | ProblemType::InvalidClientId
            | ProblemType::InvalidPrecondition
            | ProblemType::InvalidCursor => StatusCode::BAD_REQUEST,
            ProblemType::Forbidden => StatusCode::FORBIDDEN,
            ProblemType::NotFound => StatusCode::NOT_FOUND,
            ProblemType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemType::IdempotencyKeyInUse => StatusCode::CONFLICT,
            ProblemType::Gone => StatusCode::GONE,
            ProblemType::VersionConflict => StatusCode::PRECONDITION_FAILED,
            ProblemType::PayloadTooLarge | ProblemType::BatchTooLarge => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ProblemType::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemType::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemType::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemType::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemType::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.slug())
    }
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ProblemType,
    pub detail: String,
    /// Extension members (RFC 9457 §3.2), e.g. `current` on a version conflict.
    pub extra: Map<String, Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
            extra: Map::new(),
            headers: Vec::new(),
        }
    }

    pub fn with(mut self, member: &str, value: Value) -> Self {
        self.extra.insert(member.to_owned(), value);
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn retry_after(self, secs: u64) -> Self {
        self.header(header::RETRY_AFTER, HeaderValue::from(secs))
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("type".into(), Value::String(self.kind.uri()));
        obj.insert("title".into(), Value::String(self.kind.title().into()));
        obj.insert("status".into(), Value::from(self.kind.status().as_u16()));
        obj.insert("detail".into(), Value::String(self.detail.clone()));
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_json()).unwrap_or_default();
        let mut res = (self.kind.status(), body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        for (name, value) in self.headers {
            h.insert(name, value);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_is_documented_in_protocol_md() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        for kind in ProblemType::ALL {
            let row = format!("| `{}` | {} |", kind.slug(), kind.status().as_u16());
            assert!(
                doc.contains(&row),
                "PROTOCOL.md lacks a table row starting with {row:?}"
            );
        }
    }

    #[test]
    fn slugs_are_unique() {
        let mut slugs: Vec<_> = ProblemType::ALL.iter().map(|k| k.slug()).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
    }
}
