//! `GET {base}/pull`: the latest state of every document changed after a cursor.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::fault_layer::{latency_of, sleep_latency, InjectedLatency};
use super::{internal, AppState, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT};
use crate::problem::{Problem, ProblemType};
use crate::store::DocRow;

/// The most `collection` filters one pull may name: a filter is a short list of what the client shows.
pub const MAX_PULL_COLLECTIONS: usize = 100;

#[derive(Default)]
pub(super) struct PullParams {
    since: Option<String>,
    limit: Option<String>,
    /// `collection=a&collection=b`: only these; empty = every collection.
    collections: Vec<String>,
}

impl PullParams {
    /// Read from the raw pairs: serde's urlencoded structs cannot collect a repeated key.
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, Problem> {
        let mut params = PullParams::default();
        for (name, value) in pairs {
            match name.as_str() {
                "since" => params.since = Some(value),
                "limit" => params.limit = Some(value),
                "collection" if value.is_empty() => {
                    return Err(Problem::new(
                        ProblemType::InvalidRequest,
                        "collection must name a collection",
                    ))
                }
                "collection" => params.collections.push(value),
                _ => {}
            }
        }
        if params.collections.len() > MAX_PULL_COLLECTIONS {
            return Err(Problem::new(
                ProblemType::InvalidRequest,
                format!("at most {MAX_PULL_COLLECTIONS} collection filters"),
            ));
        }
        Ok(params)
    }
}

pub(super) async fn pull(
    State(s): AppState,
    latency: Option<Extension<InjectedLatency>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(pairs) =
            query.map_err(|e| Problem::new(ProblemType::InvalidRequest, e.body_text()))?;
        let params = PullParams::from_pairs(pairs)?;
        let since = match params.since.as_deref() {
            None | Some("") => 0,
            Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Problem::new(
                    ProblemType::InvalidCursor,
                    "since must be a cursor returned by a previous pull (or absent)",
                )
            })?,
        };
        let limit = match params.limit.as_deref() {
            None | Some("") => DEFAULT_PULL_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PULL_LIMIT).contains(n))
                .ok_or_else(|| {
                    Problem::new(
                        ProblemType::InvalidRequest,
                        format!("limit must be an integer from 1 to {MAX_PULL_LIMIT}"),
                    )
                })?,
        };
        sleep_latency(latency_of(latency)).await;
        let mut rows = s
            .store
            .changes_since(since, limit, params.collections)
            .await
            .map_err(internal)?;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let cursor = rows.last().map_or(since, |r| r.seq);
        let changes: Vec<Value> = rows.iter().map(change_json).collect();
        Ok(Json(json!({
            "changes": changes,
            "cursor": cursor.to_string(),
            "hasMore": has_more,
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(|p: Problem| p.into_response())
}

pub(super) fn change_json(row: &DocRow) -> Value {
    let mut v = row.state_json();
    if let Value::Object(obj) = &mut v {
        obj.insert("collection".into(), json!(row.collection));
        obj.insert("key".into(), json!(row.key));
    }
    v
}
