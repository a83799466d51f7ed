//! What a write means, decided the same way by every store: the idempotency check (replay or
//! 422), the preconditions against the current state, and the new version, body and status.
//! The stores do the I/O around these pure functions.

use std::time::Duration;

use serde_json::Value;

use super::{etag, DocRow, Method, OpResult, StoredResponse, WriteOp};
use crate::problem::{Problem, ProblemType};

/// An idempotency record as stored.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub fingerprint: Vec<u8>,
    pub stored: StoredResponse,
    pub expires_ms: i64,
}

/// The answer for an op whose key already has a live record: the replay, or 422 if the record
/// belongs to a different request. `None` when there is no live record and the op must be
/// processed (the caller deletes an expired record first).
pub fn answer_from_record(record: Option<&KeyRecord>, op: &WriteOp, now: i64) -> Option<OpResult> {
    let record = record.filter(|r| r.expires_ms > now)?;
    if record.fingerprint == op.fingerprint {
        return Some(OpResult::Replayed(record.stored.clone()));
    }
    Some(OpResult::Problem(Problem::new(
        ProblemType::IdempotencyKeyReused,
        "this Idempotency-Key was already used for a different request (method, path or body differ)",
    )))
}

/// The state a successful op leaves behind, and the response stored with its key.
#[derive(Clone, Debug)]
pub struct Effect {
    pub version: u64,
    pub deleted: bool,
    pub body: Option<String>,
    pub response: StoredResponse,
}

/// Evaluates the op's preconditions against `current` (the live or tombstoned row, read under
/// the store's write lock) and computes its effect, or the problem that refuses it.
pub fn effect(current: Option<&DocRow>, op: &WriteOp) -> Result<Effect, Problem> {
    let live = current.filter(|d| !d.deleted);
    let live_tag = live.map(|d| d.version.to_string());
    let conflict = |why: &str| {
        let current_json = current.map_or(Value::Null, DocRow::state_json);
        let mut p = Problem::new(ProblemType::VersionConflict, why).with("current", current_json);
        if let Some(d) = live {
            if let Ok(v) = axum::http::HeaderValue::from_str(&etag(d.version)) {
                p = p.header(axum::http::header::ETAG, v);
            }
        }
        p
    };
    if let Some(cond) = &op.preconditions.if_match {
        if !cond.matches_strong(live_tag.as_deref()) {
            return Err(conflict(match live {
                Some(_) => "If-Match does not match the current version",
                None => "If-Match was given but the document does not exist",
            }));
        }
    }
    if let Some(cond) = &op.preconditions.if_none_match {
        if cond.matches_weak(live_tag.as_deref()) {
            return Err(conflict(
                "If-None-Match matched: the document already exists",
            ));
        }
    }

    let version = current.map_or(1, |d| d.version + 1);
    let (status, body, deleted) = match op.method {
        Method::Put => (
            if live.is_some() { 200 } else { 201 },
            Some(op.body.to_string()),
            false,
        ),
        Method::Patch => {
            let Some(doc) = live else {
                return Err(missing(current, op));
            };
            let mut merged = doc.doc_value();
            json_patch::merge(&mut merged, &op.body);
            (200, Some(merged.to_string()), false)
        }
        Method::Delete => {
            if live.is_none() {
                return Err(missing(current, op));
            }
            (204, None, true)
        }
    };
    Ok(Effect {
        version,
        deleted,
        response: StoredResponse {
            status,
            version,
            content_type: body.as_ref().map(|_| "application/json".to_owned()),
            location: (status == 201).then(|| op.location.clone()),
            body: body.clone(),
        },
        body,
    })
}

/// When a record stored at `now` expires: at the TTL in effect when it was stored.
pub fn expires_at(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64)
}

/// PATCH or DELETE of a document that is not live: 404 if it never existed, 410 with the
/// tombstone's version if it was deleted.
fn missing(current: Option<&DocRow>, op: &WriteOp) -> Problem {
    match current {
        Some(tomb) => Problem::new(
            ProblemType::Gone,
            format!("{}/{} was deleted", op.collection, op.key),
        )
        .with("current", tomb.state_json()),
        None => Problem::new(
            ProblemType::NotFound,
            format!("{}/{} does not exist", op.collection, op.key),
        )
        .with("current", Value::Null),
    }
}

/// The answer to an op whose key another request holds.
pub fn key_in_use() -> OpResult {
    OpResult::Problem(
        Problem::new(
            ProblemType::IdempotencyKeyInUse,
            "a request with this Idempotency-Key is still being processed; retry later with the same key",
        )
        .retry_after(1),
    )
}
