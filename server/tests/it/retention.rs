//! `Idempotency-Retention` (PROTOCOL §4 "Lifetime"): every API response states the idempotency
//! TTL in whole seconds. The TTL here is never the default, so a hard-coded value would fail.

use reqwest::{Method, Response};
use serde_json::json;

use crate::common::*;

on_both_stores!(
    every_api_response_states_the_retention,
    fault_injected_answers_state_the_retention,
    cors_exposes_the_retention_and_preflights_carry_it,
    the_retention_is_whole_seconds_rounded_down,
    a_custom_base_path_is_covered,
);

const TTL_ARGS: [&str; 2] = ["--idempotency-ttl", "90m"];
const TTL_SECS: &str = "5400";

#[track_caller]
fn assert_retention(res: &Response, expected: &str, what: &str) {
    let values: Vec<_> = res
        .headers()
        .get_all("idempotency-retention")
        .iter()
        .collect();
    assert_eq!(values, [expected], "{what}: {}", res.status());
}

async fn every_api_response_states_the_retention(store: Backend) {
    let s = Server::start_with(store, &TTL_ARGS);
    let put = s
        .put("/docs/c/a", "k1", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    assert_retention(&put, TTL_SECS, "PUT");
    let replay = s
        .put("/docs/c/a", "k1", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    assert!(replayed(&replay));
    assert_retention(&replay, TTL_SECS, "replayed PUT");
    let patch = s
        .patch("/docs/c/a", "k2", &json!({"w": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    assert_retention(&patch, TTL_SECS, "PATCH");
    let get = s.req(Method::GET, "/docs/c/a").send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_retention(&get, TTL_SECS, "GET");
    let push = s
        .push(json!([
            {"method": "PUT", "collection": "c", "key": "b", "idempotencyKey": "k3", "body": {}},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 200);
    assert_retention(&push, TTL_SECS, "push");
    let delete = s.delete("/docs/c/a", "k4").send().await.unwrap();
    assert_eq!(delete.status(), 204);
    assert_retention(&delete, TTL_SECS, "DELETE");
    let pull = s.req(Method::GET, "/pull?since=0").send().await.unwrap();
    assert_eq!(pull.status(), 200);
    assert_retention(&pull, TTL_SECS, "pull");
    let health = s.req(Method::GET, "/health").send().await.unwrap();
    assert_retention(&health, TTL_SECS, "health");

    // Errors too: from handlers, from validation and from the router's fallbacks.
    let missing = s.req(Method::GET, "/docs/c/never").send().await.unwrap();
    assert_retention(&missing, TTL_SECS, "404");
    expect_problem(missing, 404, "not-found").await;
    let gone = s.req(Method::GET, "/docs/c/a").send().await.unwrap();
    assert_retention(&gone, TTL_SECS, "410");
    expect_problem(gone, 410, "gone").await;
    let conflict = s
        .put("/docs/c/b", "k5", &json!({}))
        .header("If-Match", "\"9\"")
        .send()
        .await
        .unwrap();
    assert_retention(&conflict, TTL_SECS, "412");
    expect_problem(conflict, 412, "version-conflict").await;
    let no_key = s
        .req(Method::PUT, "/docs/c/b")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_retention(&no_key, TTL_SECS, "400");
    let bad_cursor = s.req(Method::GET, "/pull?since=x").send().await.unwrap();
    assert_retention(&bad_cursor, TTL_SECS, "invalid cursor");
    let no_route = s.req(Method::GET, "/nope").send().await.unwrap();
    assert_retention(&no_route, TTL_SECS, "unknown route");
    let wrong_method = s.req(Method::POST, "/docs/c/a").send().await.unwrap();
    assert_retention(&wrong_method, TTL_SECS, "405");

    // Outside {base} the header says nothing about the API, so it is not sent.
    let ledger = s
        .client
        .get(format!("{}/_admin/ledger", s.url))
        .send()
        .await
        .unwrap();
    assert!(!ledger.headers().contains_key("idempotency-retention"));
}

async fn fault_injected_answers_state_the_retention(store: Backend) {
    let s = Server::start_with(
        store,
        &[
            TTL_ARGS[0],
            TTL_ARGS[1],
            "--faults",
            r#"{"sequence": ["error503", "error429", "error500", "error503"], "retryAfter503Secs": 7}"#,
        ],
    );
    let unavailable = s.put("/docs/c/a", "k", &json!({})).send().await.unwrap();
    assert_retention(&unavailable, TTL_SECS, "injected 503");
    assert_eq!(unavailable.headers()["retry-after"], "7");
    expect_problem(unavailable, 503, "service-unavailable").await;
    let limited = s.push(json!([])).send().await.unwrap();
    assert_retention(&limited, TTL_SECS, "injected 429");
    expect_problem(limited, 429, "rate-limited").await;
    let internal = s.req(Method::GET, "/pull").send().await.unwrap();
    assert_retention(&internal, TTL_SECS, "injected 500");
    expect_problem(internal, 500, "internal-error").await;
    let unavailable = s.req(Method::GET, "/docs/c/a").send().await.unwrap();
    assert_retention(&unavailable, TTL_SECS, "injected 503 on GET");
    expect_problem(unavailable, 503, "service-unavailable").await;
    assert_eq!(s.ledger().await, json!({}));

    // The rate-limit mode's own 429 comes from the same middleware's other branch.
    s.set_faults(json!({"rateLimit": {"limit": 1, "windowSecs": 60}}))
        .await;
    let allowed = s.req(Method::GET, "/pull").send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_retention(&allowed, TTL_SECS, "rate-limited mode, allowed");
    let over = s.put("/docs/c/a", "k", &json!({})).send().await.unwrap();
    assert_retention(&over, TTL_SECS, "rate-limited mode, over the limit");
    expect_problem(over, 429, "rate-limited").await;
}

async fn cors_exposes_the_retention_and_preflights_carry_it(store: Backend) {
    let s = Server::start_with(store, &TTL_ARGS);
    let preflight = s
        .req(Method::OPTIONS, "/docs/c/x")
        .header("Origin", "http://localhost:5173")
        .header("Access-Control-Request-Method", "PUT")
        .header(
            "Access-Control-Request-Headers",
            "idempotency-key,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_retention(&preflight, TTL_SECS, "preflight");

    let res = s
        .put("/docs/c/x", "k", &json!({}))
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_retention(&res, TTL_SECS, "cross-origin PUT");
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed
            .split(',')
            .any(|e| e.trim() == "idempotency-retention"),
        "not exposed: {exposed}"
    );
}

async fn the_retention_is_whole_seconds_rounded_down(store: Backend) {
    let s = Server::start_with(store, &["--idempotency-ttl", "1500ms"]);
    let res = s.put("/docs/c/x", "k", &json!({})).send().await.unwrap();
    assert_retention(&res, "1", "1.5 s");
    let s = Server::start_with(store, &["--idempotency-ttl", "900ms"]);
    let res = s.req(Method::GET, "/pull").send().await.unwrap();
    assert_retention(&res, "0", "0.9 s");
}

async fn a_custom_base_path_is_covered(store: Backend) {
    let s = Server::start_with(
        store,
        &[TTL_ARGS[0], TTL_ARGS[1], "--base-path", "/v2/sync/"],
    );
    let res = s
        .client
        .get(format!("{}/v2/sync/docs/c/never", s.url))
        .send()
        .await
        .unwrap();
    assert_retention(&res, TTL_SECS, "404 under /v2/sync");
    expect_problem(res, 404, "not-found").await;
    let outside = s
        .client
        .get(format!("{}/api/docs/c/never", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);
    assert!(!outside.headers().contains_key("idempotency-retention"));
}
