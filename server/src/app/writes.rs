//! The write pipeline shared by single-document writes and push: fingerprint, claim the keys,
//! apply in one transaction, and turn the stored response into an HTTP answer.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::fault_layer::sleep_latency;
use super::{internal, Shared};
use crate::headers::IDEMPOTENT_REPLAYED;
use crate::problem::Problem;
use crate::store::{Method, OpResult, StoredResponse, WriteOp};

/// The request fingerprint of the idempotency draft: method, resource and body. The body is
/// hashed in canonical form (parsed and re-serialised with sorted keys) so the same op sent as a
/// single request or inside a push has the same fingerprint. Preconditions are deliberately not
/// part of it: a retry whose If-Match was rebased is still the same operation.
pub(super) fn fingerprint(method: Method, collection: &str, key: &str, body: &Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update(b"\n");
    h.update(collection);
    h.update(b"\n");
    h.update(key);
    h.update(b"\n");
    if method != Method::Delete {
        h.update(body.to_string());
    }
    h.finalize().into()
}

/// Hands the valid ops to the store, which claims their keys, waits out injected latency and
/// applies them in one transaction. Results come back in op order. The store call runs in a task
/// of its own, so a client that goes away cannot cut a write off halfway.
pub(super) async fn execute(
    s: &Arc<Shared>,
    scope: String,
    ops: Vec<Result<WriteOp, Problem>>,
    latency: Duration,
) -> Result<Vec<OpResult>, Problem> {
    let mut slots: Vec<Option<OpResult>> = Vec::with_capacity(ops.len());
    let mut valid = Vec::new();
    for op in ops {
        match op {
            Err(p) => slots.push(Some(OpResult::Problem(p))),
            Ok(op) => {
                slots.push(None);
                valid.push(op);
            }
        }
    }
    if valid.is_empty() {
        sleep_latency(latency).await;
    } else {
        let store = s.store.clone();
        let applied = tokio::spawn(async move { store.apply(&scope, valid, latency).await })
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let mut applied = applied.into_iter();
        for slot in slots.iter_mut().filter(|r| r.is_none()) {
            *slot = applied.next();
        }
    }
    Ok(slots
        .into_iter()
        .map(|r| r.unwrap_or_else(|| OpResult::Problem(internal("missing result"))))
        .collect())
}

pub(super) fn stored_response(stored: &StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = match &stored.body {
        Some(body) => (status, body.clone()).into_response(),
        None => status.into_response(),
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&stored.etag()) {
        h.insert(header::ETAG, v);
    }
    match &stored.content_type {
        Some(ct) => {
            if let Ok(v) = HeaderValue::from_str(ct) {
                h.insert(header::CONTENT_TYPE, v);
            }
        }
        None => {
            h.remove(header::CONTENT_TYPE);
        }
    }
    if let Some(loc) = stored
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        h.insert(header::LOCATION, loc);
    }
    if replayed {
        h.insert(
            HeaderName::from_static(IDEMPOTENT_REPLAYED),
            HeaderValue::from_static("true"),
        );
    }
    res
}

pub(super) fn op_response(result: OpResult) -> Response {
    match result {
        OpResult::Applied(stored) => stored_response(&stored, false),
        OpResult::Replayed(stored) => stored_response(&stored, true),
        OpResult::Problem(p) => p.into_response(),
    }
}
