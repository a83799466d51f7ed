use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use clap::Parser;
use reqwest::Method;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common::*;

on_both_stores!(
    faults_are_seeded_and_reproducible,
    lost_ack_commits_the_whole_push_then_drops_the_connection,
    stall_holds_the_request_until_the_client_gives_up_and_writes_nothing,
    latency_and_method_filters,
    faults_flag_configures_at_start_up,
    rate_limit_mode_sends_headers_and_429,
    admin_api_is_loopback_only,
    admin_reset_forgets_everything,
);

async fn statuses(s: &Server, n: usize) -> Vec<(u16, Option<String>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let res = s.req(Method::GET, "/docs/c/missing").send().await.unwrap();
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        out.push((res.status().as_u16(), retry_after));
    }
    out
}

async fn faults_are_seeded_and_reproducible(store: Backend) {
    let s = Server::start(store);
    let config = |seed: u64| {
        json!({
            "seed": seed,
            "error500Percent": 20,
            "error503Percent": 20,
            "retryAfter503Secs": 2,
            "error429Percent": 10,
            "retryAfter429Secs": 3,
        })
    };
    s.set_faults(config(42)).await;
    let a = statuses(&s, 60).await;
    s.set_faults(config(42)).await;
    let b = statuses(&s, 60).await;
    assert_eq!(a, b, "same seed, same faults");
    s.set_faults(config(43)).await;
    let c = statuses(&s, 60).await;
    assert_ne!(a, c, "another seed, other faults");

    let count = |code: u16| a.iter().filter(|(s, _)| *s == code).count();
    assert!(count(404) > 10, "most requests pass through: {a:?}");
    assert!(count(500) > 0 && count(503) > 0 && count(429) > 0, "{a:?}");
    for (status, retry_after) in &a {
        match status {
            503 => assert_eq!(retry_after.as_deref(), Some("2")),
            429 => assert_eq!(retry_after.as_deref(), Some("3")),
            _ => assert_eq!(retry_after, &None),
        }
    }
    let snapshot: Value = s
        .client
        .get(format!("{}/_admin/faults", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["considered"], 60);
    assert_eq!(snapshot["config"]["seed"], 43);

    // Health checks are never faulted.
    s.set_faults(json!({"error503Percent": 100})).await;
    for _ in 0..5 {
        assert_eq!(
            s.req(Method::GET, "/health").send().await.unwrap().status(),
            200
        );
    }
    let res = s.req(Method::GET, "/docs/c/missing").send().await.unwrap();
    expect_problem(res, 503, "service-unavailable").await;
    let cleared = s
        .client
        .delete(format!("{}/_admin/faults", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(
        s.req(Method::GET, "/docs/c/missing")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

async fn lost_ack_commits_the_whole_push_then_drops_the_connection(store: Backend) {
    let s = Server::start(store);
    let ops: Vec<Value> = (0..5)
        .map(|i| json!({"method": "PUT", "collection": "c", "key": format!("k{i}"), "idempotencyKey": format!("op{i}"), "body": {"i": i}}))
        .collect();
    s.set_faults(json!({"sequence": ["lostAck"]})).await;
    let lost = s.push(json!(ops)).send().await;
    assert!(lost.is_err(), "expected a connection error, got {lost:?}");

    let ledger = s.ledger().await;
    for i in 0..5 {
        assert_eq!(ledger[format!("default/op{i}")], 1);
    }
    let body: Value = s
        .push(json!(ops))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for r in body["results"].as_array().unwrap() {
        assert_eq!(
            (r["status"].as_u64(), r["replayed"].as_bool()),
            (Some(201), Some(true)),
            "{r}"
        );
    }
    assert_eq!(s.ledger().await, ledger);
}

async fn stall_holds_the_request_until_the_client_gives_up_and_writes_nothing(store: Backend) {
    let s = Server::start(store);
    s.set_faults(json!({"sequence": ["stall"], "stallMs": 5000}))
        .await;
    let impatient = client(Duration::from_millis(400));
    let started = Instant::now();
    let res = impatient
        .put(s.api("/docs/c/stalled"))
        .header("Idempotency-Key", sf("st"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await;
    let err = res.expect_err("the client must time out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(s.ledger().await, json!({}));
    // The next request is served normally, with the same key.
    let ok = s
        .put("/docs/c/stalled", "st", &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    assert!(!replayed(&ok));
}

async fn latency_and_method_filters(store: Backend) {
    let s = Server::start(store);
    s.set_faults(json!({"latencyMs": 300, "methods": ["PUT"]}))
        .await;
    let t = Instant::now();
    assert_eq!(
        s.put("/docs/c/a", "a", &json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(s.get_json("/docs/c/a").await.0, 200);
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "GET is not delayed"
    );

    let bad = s
        .client
        .post(format!("{}/_admin/faults", s.url))
        .header("Content-Type", "application/json")
        .body(json!({"error500Percent": 70, "error503Percent": 40}).to_string())
        .send()
        .await
        .unwrap();
    expect_problem(bad, 400, "invalid-request").await;
    let typo = s
        .client
        .post(format!("{}/_admin/faults", s.url))
        .header("Content-Type", "application/json")
        .body(json!({"error500Pct": 10}).to_string())
        .send()
        .await
        .unwrap();
    expect_problem(typo, 400, "invalid-request").await;
}

async fn faults_flag_configures_at_start_up(store: Backend) {
    let s = Server::start_with(
        store,
        &[
            "--faults",
            r#"{"sequence": ["error503", "error429"], "retryAfter503Secs": 5}"#,
        ],
    );
    assert_eq!(
        s.req(Method::GET, "/health").send().await.unwrap().status(),
        200
    );
    let first = s.put("/docs/c/a", "a", &json!({})).send().await.unwrap();
    assert_eq!(first.headers()["retry-after"], "5");
    expect_problem(first, 503, "service-unavailable").await;
    let second = s.put("/docs/c/a", "a", &json!({})).send().await.unwrap();
    expect_problem(second, 429, "rate-limited").await;
    let third = s.put("/docs/c/a", "a", &json!({})).send().await.unwrap();
    assert_eq!(third.status(), 201);
    assert_eq!(s.ledger().await, json!({"default/a": 1}));
}

async fn rate_limit_mode_sends_headers_and_429(store: Backend) {
    let s = Server::start(store);
    s.set_faults(json!({"rateLimit": {"limit": 3, "windowSecs": 60}}))
        .await;
    for remaining in [2, 1, 0] {
        let res = s.req(Method::GET, "/pull").send().await.unwrap();
        assert_eq!(res.status(), 200);
        let h = res.headers();
        assert_eq!(h["ratelimit-policy"], "\"default\";q=3;w=60");
        let rl = h["ratelimit"].to_str().unwrap();
        assert!(
            rl.starts_with(&format!("\"default\";r={remaining};t=")),
            "{rl}"
        );
        assert_eq!(h["x-ratelimit-limit"], "3");
        assert_eq!(h["x-ratelimit-remaining"], remaining.to_string().as_str());
        let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset));
    }
    let limited = s.put("/docs/c/a", "a", &json!({})).send().await.unwrap();
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    expect_problem(limited, 429, "rate-limited").await;
    assert_eq!(s.ledger().await, json!({}), "a limited write has no effect");
    // Budgets are per client.
    let other = s
        .req(Method::GET, "/pull")
        .header("Outbox-Client-Id", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

/// The admin API checks the peer address; a non-loopback peer cannot be produced over real
/// sockets on a test machine, so this drives the router in-process with a forged peer.
async fn admin_api_is_loopback_only(store: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_db(store, dir.path());
    let config = outbox_server::Config::parse_from(["outbox-server", "--db", &db]);
    let options = outbox_server::store::StoreOptions {
        ttl: Duration::from_secs(60),
        synchronous: outbox_server::store::sqlite::Synchronous::Normal,
        pg_pool_size: 1,
    };
    let store = outbox_server::store::open(&config.db, &options)
        .await
        .unwrap();
    let app = outbox_server::app::router(outbox_server::app::Shared::new(store, &config), &config);
    let call = |peer: &str, method: &str, path: &str| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from("{\"error500Percent\": 100}"))
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        app.clone().oneshot(req)
    };
    for path in ["/_admin/ledger", "/_admin/faults"] {
        for peer in ["10.1.2.3:5555", "192.168.0.7:1", "[2001:db8::1]:80"] {
            let res = call(peer, "GET", path).await.unwrap();
            assert_eq!(res.status(), 403, "{peer} {path}");
        }
        for peer in ["127.0.0.1:5555", "[::1]:80", "[::ffff:127.0.0.1]:9"] {
            let res = call(peer, "GET", path).await.unwrap();
            assert_eq!(res.status(), 200, "{peer} {path}");
        }
    }
    let res = call("10.0.0.1:1", "POST", "/_admin/faults").await.unwrap();
    assert_eq!(res.status(), 403);
    let res = call("10.0.0.1:1", "POST", "/_admin/reset").await.unwrap();
    assert_eq!(res.status(), 403);
    // The forbidden POST did not switch faults on.
    let res = call("10.0.0.1:1", "GET", "/api/docs/c/x").await.unwrap();
    assert_eq!(res.status(), 404);
}

async fn admin_reset_forgets_everything(store: Backend) {
    let s = Server::start(store);
    s.put("/docs/c/a", "a", &json!({})).send().await.unwrap();
    let res = s
        .client
        .post(format!("{}/_admin/reset", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(s.ledger().await, json!({}));
    assert_eq!(s.get_json("/docs/c/a").await.0, 404);
    let (changes, _) = s.pull_all("", 10).await;
    assert!(changes.is_empty());
}
