//! The HTTP layer: the router and its middleware here, the handlers in one module per concern
//! (documents, push, pull, admin), the shared write pipeline in `writes`.

mod admin;
mod documents;
mod fault_layer;
mod pull;
mod push;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::faults::Faults;
use crate::problem::{Problem, ProblemType};
use crate::retention::{self, Retention, IDEMPOTENCY_RETENTION};
use crate::store::Store;
use crate::Config;

use admin::{clear_faults, get_faults, ledger, loopback_only, reset, set_faults};
use documents::{get_doc, write_doc};
use fault_layer::inject_faults;
use pull::pull;
use push::push;

pub const JSON: &str = "application/json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const DEFAULT_PULL_LIMIT: usize = 100;
pub const MAX_PULL_LIMIT: usize = 1000;

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub faults: Faults,
    base: String,
    max_batch_ops: usize,
    max_body_bytes: usize,
}

impl Shared {
    pub fn new(store: Arc<dyn Store>, config: &Config) -> Arc<Shared> {
        Arc::new(Shared {
            store,
            faults: Faults::new(config.faults.clone().unwrap_or_default()),
            base: config.normalized_base(),
            max_batch_ops: config.max_batch_ops,
            max_body_bytes: config.max_body_bytes,
        })
    }
}

pub(crate) type AppState = State<Arc<Shared>>;

pub fn router(shared: Arc<Shared>, config: &Config) -> Router {
    let api = Router::new()
        .route(
            "/docs/{collection}/{key}",
            get(get_doc)
                .put(write_doc)
                .patch(write_doc)
                .delete(write_doc),
        )
        .route("/push", post(push))
        .route("/pull", get(pull))
        // Health checks stay outside fault injection: scripts use them to wait for start-up.
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            inject_faults,
        ))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);

    let admin = Router::new()
        .route(
            "/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/ledger", get(ledger))
        .route("/reset", post(reset))
        .route_layer(middleware::from_fn(loopback_only))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);

    let base = config.normalized_base();
    let mut app = if base.is_empty() {
        Router::new().merge(api)
    } else {
        Router::new().nest(&base, api)
    };
    app = app.nest("/_admin", admin);
    app = match &config.www {
        Some(dir) => {
            app.fallback_service(ServeDir::new(dir).append_index_html_on_directories(true))
        }
        None => app.fallback(not_found),
    };

    app.layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(cors(config))
        .layer(middleware::from_fn_with_state(
            Retention::new(&base, config.idempotency_ttl),
            retention::with_retention,
        ))
        .layer(
            // Only method, path and status are logged: never headers (Authorization) or query
            // strings, which may carry credentials.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .with_state(shared)
}

fn cors(config: &Config) -> CorsLayer {
    let allow_origin = if config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else if !config.cors_origins.is_empty() {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    } else {
        AllowOrigin::predicate(|origin, parts| default_origin_allowed(origin, &parts.headers))
    };
    let h = |s: &'static str| HeaderName::from_static(s);
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            HttpMethod::GET,
            HttpMethod::PUT,
            HttpMethod::PATCH,
            HttpMethod::DELETE,
            HttpMethod::POST,
        ])
        .allow_headers([
            h("idempotency-key"),
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            h("outbox-client-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::DATE,
            header::RETRY_AFTER,
            header::LOCATION,
            h("ratelimit"),
            h("ratelimit-policy"),
            h("x-ratelimit-limit"),
            h("x-ratelimit-remaining"),
            h("x-ratelimit-reset"),
            h("idempotent-replayed"),
            h(IDEMPOTENCY_RETENTION),
        ])
        .max_age(Duration::from_secs(600))
}

/// Default CORS policy: the origin the request was sent to, and local development origins.
fn default_origin_allowed(origin: &HeaderValue, headers: &HeaderMap) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Ok(uri) = origin.parse::<axum::http::Uri>() else {
        return false;
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return false;
    }
    if matches!(uri.host(), Some("localhost" | "127.0.0.1" | "[::1]")) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((uri.authority(), host), (Some(a), Some(h)) if a.as_str().eq_ignore_ascii_case(h))
}

// ---------------------------------------------------------------------------------------------
// Misc

pub(crate) async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub(crate) async fn not_found() -> Response {
    Problem::new(ProblemType::NotFound, "no such resource").into_response()
}

pub(crate) async fn method_not_allowed() -> Response {
    Problem::new(
        ProblemType::MethodNotAllowed,
        "method not allowed on this resource",
    )
    .into_response()
}

pub(crate) fn body_bytes(
    body: Result<Bytes, BytesRejection>,
    max: usize,
) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                ProblemType::PayloadTooLarge,
                format!("the request body exceeds the limit of {max} bytes"),
            )
        } else {
            Problem::new(ProblemType::InvalidRequest, e.body_text())
        }
    })
}

pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            ProblemType::MalformedJson,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "internal error");
    Problem::new(
        ProblemType::InternalError,
        "internal error; the request may be retried",
    )
}
