//! The write pipeline shared by single-document writes and push: fingerprint, claim the keys,
//! apply in one transaction, and turn the stored response into an HTTP answer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::fault_layer::sleep_latency;
use super::{internal, Shared};
use crate::headers::IDEMPOTENT_REPLAYED;
use crate::problem::{Problem, ProblemType};
use crate::store::{Method, OpResult, StoredResponse, WriteOp};

/// Keys whose first request is still being processed. A second request with the same key gets
/// 409 `idempotency-key-in-use` instead of waiting. In-memory is enough for this single-process
/// server: nothing is persisted until the effect commits, so a crash leaves no stale lock.
#[derive(Default)]
pub(super) struct InFlight(Mutex<HashSet<(String, String)>>);

pub(super) struct Reservation {
    registry: Arc<InFlight>,
    held: Vec<(String, String)>,
}

impl Reservation {
    fn new(registry: Arc<InFlight>) -> Self {
        Reservation {
            registry,
            held: Vec::new(),
        }
    }

    /// True if this request now holds the key (also when it already did: a batch may repeat a
    /// key, and the second op then replays the first).
    fn acquire(&mut self, scope: &str, key: &str) -> bool {
        let id = (scope.to_owned(), key.to_owned());
        if self.held.contains(&id) {
            return true;
        }
        let mut set = self.registry.0.lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(id.clone()) {
            self.held.push(id);
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut set = self.registry.0.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.held {
            set.remove(id);
        }
    }
}

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

/// Reserves the ops' keys, waits out injected latency, then applies everything in one
/// transaction on a blocking thread. Results come back in op order.
pub(super) async fn execute(
    s: &Arc<Shared>,
    scope: String,
    ops: Vec<Result<WriteOp, Problem>>,
    latency: Duration,
) -> Result<Vec<OpResult>, Problem> {
    let mut reservation = Reservation::new(s.inflight.clone());
    let mut slots: Vec<Option<OpResult>> = Vec::with_capacity(ops.len());
    let mut positions = Vec::new();
    let mut to_apply = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Err(p) => slots.push(Some(OpResult::Problem(p))),
            Ok(op) if reservation.acquire(&scope, &op.idempotency_key) => {
                slots.push(None);
                positions.push(i);
                to_apply.push(op);
            }
            Ok(_) => slots.push(Some(OpResult::Problem(Problem::new(
                ProblemType::IdempotencyKeyInUse,
                "a request with this Idempotency-Key is still being processed; retry later with the same key",
            )
            .retry_after(1)))),
        }
    }
    sleep_latency(latency).await;
    if !to_apply.is_empty() {
        let store = s.store.clone();
        let applied = tokio::task::spawn_blocking(move || {
            // Held until the transaction has committed, even if the client goes away meanwhile.
            let _held = reservation;
            store.apply(&scope, &to_apply)
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        for (i, r) in positions.into_iter().zip(applied) {
            slots[i] = Some(r);
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
