//! Fault injection and the rate-limit mode, as one middleware around the API routes.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::AppState;
use crate::faults::{FaultKind, RateLimitState};
use crate::headers;
use crate::problem::{Problem, ProblemType};
use crate::serve::ConnKill;

/// Latency chosen by fault injection; write handlers sleep it while holding their idempotency
/// keys, so a concurrent duplicate sees the key as in flight.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct InjectedLatency(Duration);

pub(super) async fn inject_faults(State(s): AppState, mut req: Request, next: Next) -> Response {
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
pub(super) fn with_rate_headers(mut res: Response, rl: &RateLimitState) -> Response {
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

pub(super) fn latency_of(ext: Option<Extension<InjectedLatency>>) -> Duration {
    ext.map(|Extension(InjectedLatency(d))| d)
        .unwrap_or_default()
}

pub(super) async fn sleep_latency(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
