//! `POST {base}/push`: a batch of ops, one result per op.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::documents::{location, validate_doc_path};
use super::fault_layer::{latency_of, InjectedLatency};
use super::writes::{execute, fingerprint};
use super::{body_bytes, parse_json, AppState, JSON};
use crate::headers::{self, Preconditions};
use crate::problem::{Problem, ProblemType};
use crate::store::{Method, OpResult, WriteOp};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PushOp {
    #[allow(dead_code)]
    id: Option<Value>,
    method: String,
    collection: String,
    key: String,
    idempotency_key: String,
    if_match: Option<String>,
    if_none_match: Option<String>,
    #[serde(default)]
    body: Value,
}

pub(super) fn push_op(base: &str, raw: Value) -> Result<WriteOp, Problem> {
    let op: PushOp = serde_json::from_value(raw)
        .map_err(|e| Problem::new(ProblemType::InvalidRequest, format!("invalid op: {e}")))?;
    let method = match op.method.as_str() {
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => {
            return Err(Problem::new(
                ProblemType::InvalidRequest,
                format!("method must be PUT, PATCH or DELETE, not {other:?}"),
            ))
        }
    };
    validate_doc_path(&op.collection, &op.key)?;
    let idempotency_key = headers::validate_key(&op.idempotency_key)?;
    let preconditions =
        Preconditions::from_strs(op.if_match.as_deref(), op.if_none_match.as_deref())?;
    if method == Method::Delete && !op.body.is_null() {
        return Err(Problem::new(
            ProblemType::InvalidRequest,
            "a DELETE op takes no body",
        ));
    }
    Ok(WriteOp {
        method,
        fingerprint: fingerprint(method, &op.collection, &op.key, &op.body),
        location: location(base, &op.collection, &op.key),
        collection: op.collection,
        key: op.key,
        body: op.body,
        preconditions,
        idempotency_key,
    })
}

pub(super) fn result_json(id: Option<Value>, result: &OpResult) -> Value {
    let mut obj = Map::new();
    if let Some(id) = id {
        obj.insert("id".into(), id);
    }
    match result {
        OpResult::Applied(stored) | OpResult::Replayed(stored) => {
            obj.insert("status".into(), json!(stored.status));
            obj.insert("version".into(), json!(stored.version));
            obj.insert("etag".into(), json!(stored.etag()));
            obj.insert("deleted".into(), json!(stored.body.is_none()));
            if let Some(body) = &stored.body {
                obj.insert(
                    "doc".into(),
                    serde_json::from_str(body).unwrap_or(Value::Null),
                );
            }
            obj.insert(
                "replayed".into(),
                json!(matches!(result, OpResult::Replayed(_))),
            );
        }
        OpResult::Problem(p) => {
            obj.insert("status".into(), json!(p.status().as_u16()));
            obj.insert("problem".into(), p.to_json());
        }
    }
    Value::Object(obj)
}

pub(super) async fn push(
    State(s): AppState,
    latency: Option<Extension<InjectedLatency>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let scope = headers::client_scope(&headers)?;
        let bytes = body_bytes(body, s.max_body_bytes)?;
        if !headers::has_content_type(&headers, JSON) {
            return Err(Problem::new(
                ProblemType::UnsupportedMediaType,
                format!("push requires Content-Type: {JSON}"),
            ));
        }
        let Value::Object(mut batch) = parse_json(&bytes)? else {
            return Err(Problem::new(
                ProblemType::InvalidRequest,
                "expected {\"ops\": [...]}",
            ));
        };
        let Some(Value::Array(raw_ops)) = batch.remove("ops") else {
            return Err(Problem::new(
                ProblemType::InvalidRequest,
                "expected {\"ops\": [...]}",
            ));
        };
        if raw_ops.len() > s.max_batch_ops {
            return Err(Problem::new(
                ProblemType::BatchTooLarge,
                format!(
                    "{} ops sent; at most {} are accepted per push",
                    raw_ops.len(),
                    s.max_batch_ops
                ),
            )
            .with("maxOps", json!(s.max_batch_ops)));
        }
        let ids: Vec<Option<Value>> = raw_ops.iter().map(|op| op.get("id").cloned()).collect();
        let ops = raw_ops
            .into_iter()
            .map(|raw| push_op(&s.base, raw))
            .collect();
        let results = execute(&s, scope, ops, latency_of(latency)).await?;
        let results: Vec<Value> = ids
            .into_iter()
            .zip(&results)
            .map(|(id, r)| result_json(id, r))
            .collect();
        Ok(Json(json!({ "results": results })).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
