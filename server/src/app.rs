//! Routes and handlers.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::faults::{FaultConfig, FaultKind, Faults, RateLimitState};
use crate::headers::{self, Preconditions, IDEMPOTENT_REPLAYED};
use crate::problem::{Problem, ProblemType};
use crate::retention::{self, Retention, IDEMPOTENCY_RETENTION};
use crate::serve::ConnKill;
use crate::store::{etag, DocRow, Method, OpResult, Store, StoredResponse, WriteOp};
use crate::Config;

pub const JSON: &str = "application/json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const DEFAULT_PULL_LIMIT: usize = 100;
pub const MAX_PULL_LIMIT: usize = 1000;

pub struct Shared {
    pub store: Arc<Store>,
    pub faults: Faults,
    inflight: Arc<InFlight>,
    base: String,
    max_batch_ops: usize,
    max_body_bytes: usize,
}

impl Shared {
    pub fn new(store: Arc<Store>, config: &Config) -> Arc<Shared> {
        Arc::new(Shared {
            store,
            faults: Faults::new(config.faults.clone().unwrap_or_default()),
            inflight: Arc::new(InFlight::default()),
            base: config.normalized_base(),
            max_batch_ops: config.max_batch_ops,
            max_body_bytes: config.max_body_bytes,
        })
    }
}

type AppState = State<Arc<Shared>>;

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
// Idempotency keys in flight

/// Keys whose first request is still being processed. A second request with the same key gets
/// 409 `idempotency-key-in-use` instead of waiting. In-memory is enough for this single-process
/// server: nothing is persisted until the effect commits, so a crash leaves no stale lock.
#[derive(Default)]
struct InFlight(Mutex<HashSet<(String, String)>>);

struct Reservation {
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

// ---------------------------------------------------------------------------------------------
// Fault injection and rate limiting

/// Latency chosen by fault injection; write handlers sleep it while holding their idempotency
/// keys, so a concurrent duplicate sees the key as in flight.
#[derive(Clone, Copy, Debug, Default)]
struct InjectedLatency(Duration);

async fn inject_faults(State(s): AppState, mut req: Request, next: Next) -> Response {
    let scope =
        headers::client_scope(req.headers()).unwrap_or_else(|_| headers::DEFAULT_SCOPE.to_owned());
    let rate = s.faults.rate_limit(&scope);
    if let Some(rl) = rate.filter(|rl| !rl.allowed) {
        let res = Problem::new(
            ProblemType::RateLimited,
            format!(
                "rate limit of {} requests per {} s exceeded",
                rl.limit, rl.window_secs
            ),
        )
        .retry_after(rl.reset_secs)
        .into_response();
        return with_rate_headers(res, &rl);
    }
    if !s.faults.applies_to(req.method().as_str()) {
        let res = next.run(req).await;
        return match rate {
            Some(rl) => with_rate_headers(res, &rl),
            None => res,
        };
    }
    let decision = s.faults.decide();
    let config = s.faults.config();
    let kill = req.extensions().get::<ConnKill>().cloned();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let injected = |kind: &str| {
        tracing::info!(fault = kind, %method, %path, "injected fault");
    };
    let res = match decision.kind {
        FaultKind::Error500 => {
            injected("error500");
            Problem::new(ProblemType::InternalError, "injected fault").into_response()
        }
        FaultKind::Error503 => {
            injected("error503");
            let p = Problem::new(ProblemType::ServiceUnavailable, "injected fault");
            match config.retry_after503_secs {
                Some(secs) => p.retry_after(secs),
                None => p,
            }
            .into_response()
        }
        FaultKind::Error429 => {
            injected("error429");
            Problem::new(ProblemType::RateLimited, "injected fault")
                .retry_after(config.retry_after429_secs)
                .into_response()
        }
        FaultKind::Stall => {
            injected("stall");
            tokio::time::sleep(Duration::from_millis(config.stall_ms)).await;
            if let Some(kill) = kill {
                kill.fire();
                return std::future::pending().await;
            }
            Problem::new(ProblemType::ServiceUnavailable, "injected stall").into_response()
        }
        FaultKind::LostAck | FaultKind::None => {
            req.extensions_mut()
                .insert(InjectedLatency(decision.latency));
            let lost_ack = decision.kind == FaultKind::LostAck;
            if lost_ack {
                injected("lostAck");
            }
            let res = next.run(req).await;
            if lost_ack {
                if let Some(kill) = kill {
                    // The handler has committed; now lose its answer.
                    kill.fire();
                    return std::future::pending().await;
                }
            }
            res
        }
    };
    match rate {
        Some(rl) => with_rate_headers(res, &rl),
        None => res,
    }
}

/// `RateLimit-Policy` / `RateLimit` per draft-ietf-httpapi-ratelimit-headers (structured fields),
/// plus the widespread `X-RateLimit-*` trio for clients that only know those.
fn with_rate_headers(mut res: Response, rl: &RateLimitState) -> Response {
    let policy_name = sfv::StringRef::constant("default");
    let policy = sfv::ItemSerializer::new()
        .bare_item(policy_name)
        .parameter(
            sfv::KeyRef::constant("q"),
            sfv::Integer::constant(rl.limit as i64),
        )
        .parameter(
            sfv::KeyRef::constant("w"),
            sfv::Integer::constant(rl.window_secs as i64),
        )
        .finish();
    let current = sfv::ItemSerializer::new()
        .bare_item(policy_name)
        .parameter(
            sfv::KeyRef::constant("r"),
            sfv::Integer::constant(rl.remaining as i64),
        )
        .parameter(
            sfv::KeyRef::constant("t"),
            sfv::Integer::constant(rl.reset_secs as i64),
        )
        .finish();
    let h = res.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set("ratelimit-policy", policy);
    set("ratelimit", current);
    set("x-ratelimit-limit", rl.limit.to_string());
    set("x-ratelimit-remaining", rl.remaining.to_string());
    set("x-ratelimit-reset", rl.reset_secs.to_string());
    res
}

// ---------------------------------------------------------------------------------------------
// Documents

const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn validate_doc_path(collection: &str, key: &str) -> Result<(), Problem> {
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

fn doc_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), Problem> {
    let Path((collection, key)) =
        path.map_err(|e| Problem::new(ProblemType::InvalidRequest, e.body_text()))?;
    validate_doc_path(&collection, &key)?;
    Ok((collection, key))
}

fn location(base: &str, collection: &str, key: &str) -> String {
    format!(
        "{base}/docs/{}/{}",
        utf8_percent_encode(collection, PATH_SEGMENT),
        utf8_percent_encode(key, PATH_SEGMENT)
    )
}

/// The request fingerprint of the idempotency draft: method, resource and body. The body is
/// hashed in canonical form (parsed and re-serialised with sorted keys) so the same op sent as a
/// single request or inside a push has the same fingerprint. Preconditions are deliberately not
/// part of it: a retry whose If-Match was rebased is still the same operation.
fn fingerprint(method: Method, collection: &str, key: &str, body: &Value) -> [u8; 32] {
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

fn body_bytes(body: Result<Bytes, BytesRejection>, max: usize) -> Result<Bytes, Problem> {
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

fn parse_json(bytes: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            ProblemType::MalformedJson,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

fn latency_of(ext: Option<Extension<InjectedLatency>>) -> Duration {
    ext.map(|Extension(InjectedLatency(d))| d)
        .unwrap_or_default()
}

async fn sleep_latency(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn internal(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "internal error");
    Problem::new(
        ProblemType::InternalError,
        "internal error; the request may be retried",
    )
}

/// Reserves the ops' keys, waits out injected latency, then applies everything in one
/// transaction on a blocking thread. Results come back in op order.
async fn execute(
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

fn stored_response(stored: &StoredResponse, replayed: bool) -> Response {
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

fn op_response(result: OpResult) -> Response {
    match result {
        OpResult::Applied(stored) => stored_response(&stored, false),
        OpResult::Replayed(stored) => stored_response(&stored, true),
        OpResult::Problem(p) => p.into_response(),
    }
}

async fn single_write(
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
async fn write_doc(
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

async fn get_doc(
    State(s): AppState,
    latency: Option<Extension<InjectedLatency>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (collection, key) = doc_path(path)?;
        let preconditions = Preconditions::from_headers(&headers)?;
        sleep_latency(latency_of(latency)).await;
        let store = s.store.clone();
        let (c, k) = (collection.clone(), key.clone());
        let row = tokio::task::spawn_blocking(move || store.get(&c, &k))
            .await
            .map_err(internal)?
            .map_err(internal)?;
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

// ---------------------------------------------------------------------------------------------
// Push

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PushOp {
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

fn push_op(base: &str, raw: Value) -> Result<WriteOp, Problem> {
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

fn result_json(id: Option<Value>, result: &OpResult) -> Value {
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

async fn push(
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

// ---------------------------------------------------------------------------------------------
// Pull

/// The most `collection` filters one pull may name: a filter is a short list of what the client shows.
pub const MAX_PULL_COLLECTIONS: usize = 100;

#[derive(Default)]
struct PullParams {
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

async fn pull(
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
        let store = s.store.clone();
        let collections = params.collections;
        let mut rows =
            tokio::task::spawn_blocking(move || store.changes_since(since, limit, &collections))
                .await
                .map_err(internal)?
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

fn change_json(row: &DocRow) -> Value {
    let mut v = row.state_json();
    if let Value::Object(obj) = &mut v {
        obj.insert("collection".into(), json!(row.collection));
        obj.insert("key".into(), json!(row.key));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Misc

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn not_found() -> Response {
    Problem::new(ProblemType::NotFound, "no such resource").into_response()
}

async fn method_not_allowed() -> Response {
    Problem::new(
        ProblemType::MethodNotAllowed,
        "method not allowed on this resource",
    )
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Admin (loopback only)

async fn loopback_only(req: Request, next: Next) -> Response {
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

async fn get_faults(State(s): AppState) -> Response {
    Json(s.faults.snapshot()).into_response()
}

async fn set_faults(
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

async fn clear_faults(State(s): AppState) -> Response {
    s.faults.set(FaultConfig::default());
    Json(s.faults.snapshot()).into_response()
}

async fn ledger(State(s): AppState) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.ledger()).await {
        Ok(Ok(rows)) => {
            let map: Map<String, Value> = rows
                .into_iter()
                .map(|(scope, key, n)| (format!("{scope}/{key}"), json!(n)))
                .collect();
            Json(Value::Object(map)).into_response()
        }
        Ok(Err(e)) => internal(e).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

async fn reset(State(s): AppState) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.reset()).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => internal(e).into_response(),
        Err(e) => internal(e).into_response(),
    }
}
