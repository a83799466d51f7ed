//! The loopback-only admin API: fault injection, the exactly-once ledger, reset.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{body_bytes, internal, AppState, JSON};
use crate::faults::FaultConfig;
use crate::headers;
use crate::problem::{Problem, ProblemType};

pub(super) async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match peer {
        Some(addr) if addr.ip().to_canonical().is_loopback() => next.run(req).await,
        _ => Problem::new(
            ProblemType::Forbidden,
            "the admin API is only reachable from loopback addresses",
        )
        .into_response(),
    }
}

pub(super) async fn get_faults(State(s): AppState) -> Response {
    Json(s.faults.snapshot()).into_response()
}

pub(super) async fn set_faults(
    State(s): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let bytes = body_bytes(body, s.max_body_bytes)?;
        if !headers::has_content_type(&headers, JSON) {
            return Err(Problem::new(
                ProblemType::UnsupportedMediaType,
                "expected application/json",
            ));
        }
        let config: FaultConfig = serde_json::from_slice(&bytes).map_err(|e| {
            Problem::new(
                ProblemType::InvalidRequest,
                format!("invalid fault config: {e}"),
            )
        })?;
        config
            .validate()
            .map_err(|e| Problem::new(ProblemType::InvalidRequest, e))?;
        tracing::info!(?config, "fault injection configured");
        s.faults.set(config);
        Ok(Json(s.faults.snapshot()).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn clear_faults(State(s): AppState) -> Response {
    s.faults.set(FaultConfig::default());
    Json(s.faults.snapshot()).into_response()
}

pub(super) async fn ledger(State(s): AppState) -> Response {
    match s.store.ledger().await {
        Ok(rows) => {
            let map: Map<String, Value> = rows
                .into_iter()
                .map(|(scope, key, n)| (format!("{scope}/{key}"), json!(n)))
                .collect();
            Json(Value::Object(map)).into_response()
        }
        Err(e) => internal(e).into_response(),
    }
}

pub(super) async fn reset(State(s): AppState) -> Response {
    match s.store.reset().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal(e).into_response(),
    }
}
