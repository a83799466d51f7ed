//! GET, PUT, PATCH and DELETE of one document.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::fault_layer::{latency_of, sleep_latency, InjectedLatency};
use super::writes::{execute, fingerprint, op_response};
use super::{body_bytes, internal, parse_json, AppState, Shared, JSON, MERGE_PATCH};
use crate::headers::{self, Preconditions};
use crate::problem::{Problem, ProblemType};
use crate::store::{etag, Method, WriteOp};

pub(super) const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(super) fn validate_doc_path(collection: &str, key: &str) -> Result<(), Problem> {
    // `.` and `..` are dot segments: a URL resolves them away, so no request could address them.
    let dot_segment = |s: &str| s == "." || s == "..";
    let collection_ok = !collection.is_empty()
        && !dot_segment(collection)
        && collection.len() <= 64
        && collection
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !collection_ok {
        return Err(Problem::new(
            ProblemType::InvalidRequest,
            "collection must be 1 to 64 characters from A-Z a-z 0-9 - _ . and not . or ..",
        ));
    }
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) || dot_segment(key) {
        return Err(Problem::new(
            ProblemType::InvalidRequest,
            "key must be 1 to 256 bytes of UTF-8 without control characters, and not . or ..",
        ));
    }
    Ok(())
}

pub(super) fn doc_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), Problem> {
    let Path((collection, key)) =
        path.map_err(|e| Problem::new(ProblemType::InvalidRequest, e.body_text()))?;
    validate_doc_path(&collection, &key)?;
    Ok((collection, key))
}

pub(super) fn location(base: &str, collection: &str, key: &str) -> String {
    format!(
        "{base}/docs/{}/{}",
        utf8_percent_encode(collection, PATH_SEGMENT),
        utf8_percent_encode(key, PATH_SEGMENT)
    )
}

pub(super) async fn single_write(
    s: Arc<Shared>,
    method: Method,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    latency: Duration,
) -> Result<Response, Problem> {
    let (collection, key) = doc_path(path)?;
    let scope = headers::client_scope(&headers)?;
    let idempotency_key = headers::idempotency_key(&headers)?;
    let preconditions = Preconditions::from_headers(&headers)?;
    let bytes = body_bytes(body, s.max_body_bytes)?;
    let body = match method {
        Method::Put | Method::Patch => {
            let expected = if method == Method::Put {
                JSON
            } else {
                MERGE_PATCH
            };
            if !headers::has_content_type(&headers, expected) {
                let mut p = Problem::new(
                    ProblemType::UnsupportedMediaType,
                    format!("{} requires Content-Type: {expected}", method.as_str()),
                );
                if method == Method::Patch {
                    p = p.header(
                        HeaderName::from_static("accept-patch"),
                        HeaderValue::from_static(MERGE_PATCH),
                    );
                }
                return Err(p);
            }
            parse_json(&bytes)?
        }
        Method::Delete => {
            if !bytes.is_empty() {
                return Err(Problem::new(
                    ProblemType::InvalidRequest,
                    "DELETE takes no request body",
                ));
            }
            Value::Null
        }
    };
    let op = WriteOp {
        method,
        fingerprint: fingerprint(method, &collection, &key, &body),
        location: location(&s.base, &collection, &key),
        collection,
        key,
        body,
        preconditions,
        idempotency_key,
    };
    let mut results = execute(&s, scope, vec![Ok(op)], latency).await?;
    let result = results.pop().ok_or_else(|| internal("no result"))?;
    Ok(op_response(result))
}

/// PUT, PATCH and DELETE of one document: the same pipeline, told apart by the request method.
pub(super) async fn write_doc(
    State(s): AppState,
    http_method: HttpMethod,
    latency: Option<Extension<InjectedLatency>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let method = match http_method {
        HttpMethod::PUT => Method::Put,
        HttpMethod::PATCH => Method::Patch,
        // The router sends only PUT, PATCH and DELETE here.
        _ => Method::Delete,
    };
    single_write(s, method, path, headers, body, latency_of(latency))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn get_doc(
    State(s): AppState,
    latency: Option<Extension<InjectedLatency>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (collection, key) = doc_path(path)?;
        let preconditions = Preconditions::from_headers(&headers)?;
        sleep_latency(latency_of(latency)).await;
        let row = s.store.get(&collection, &key).await.map_err(internal)?;
        match row {
            None => Err(Problem::new(
                ProblemType::NotFound,
                format!("{collection}/{key} does not exist"),
            )
            .with("current", Value::Null)),
            Some(row) if row.deleted => Err(Problem::new(
                ProblemType::Gone,
                format!("{collection}/{key} was deleted"),
            )
            .with("current", row.state_json())),
            Some(row) => {
                let tag = HeaderValue::from_str(&etag(row.version)).map_err(internal)?;
                let version = row.version.to_string();
                if preconditions
                    .if_none_match
                    .is_some_and(|c| c.matches_weak(Some(&version)))
                {
                    return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
                }
                Ok((
                    [
                        (header::ETAG, tag),
                        (header::CONTENT_TYPE, HeaderValue::from_static(JSON)),
                    ],
                    row.body.unwrap_or_else(|| "null".to_owned()),
                )
                    .into_response())
            }
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
