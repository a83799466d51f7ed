use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

on_both_stores!(
    missing_or_invalid_keys_are_rejected_and_nothing_is_written,
    same_key_same_request_replays_the_stored_response,
    same_key_different_request_is_422,
    retry_after_lost_ack_under_if_match_replays_the_2xx_not_412,
    same_key_while_in_flight_is_409_in_use,
    fifty_concurrent_requests_with_one_key_apply_once,
    keys_are_scoped_per_client,
    keys_expire_after_the_ttl,
    errors_are_not_stored_so_a_corrected_retry_applies,
    push_ops_share_keys_with_single_requests,
    replays_return_the_stored_answer_after_the_doc_moved_on,
);

async fn missing_or_invalid_keys_are_rejected_and_nothing_is_written(store: Backend) {
    let s = Server::start(store);
    let long = "k".repeat(256);
    let bad_keys: Vec<Option<String>> = vec![
        None,
        Some("\"\"".into()),
        Some(format!("\"{long}\"")),
        Some("plain-token".into()),
        Some("\"unterminated".into()),
        Some("42".into()),
        Some("\"a\", \"b\"".into()),
    ];
    for key in &bad_keys {
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            let mut req = s.req(method.clone(), "/docs/todos/a");
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            req = match method {
                Method::PUT => req
                    .header("Content-Type", "application/json")
                    .body("{\"x\":1}"),
                Method::PATCH => req
                    .header("Content-Type", "application/merge-patch+json")
                    .body("{\"x\":1}"),
                _ => req,
            };
            let res = req.send().await.unwrap();
            let p = expect_problem(res, 400, "invalid-idempotency-key").await;
            assert!(p["detail"].as_str().unwrap().len() > 5, "{method} {key:?}");
        }
    }
    // The same rules inside a push.
    let res = s
        .push(json!([
            {"method":"PUT","collection":"todos","key":"a","idempotencyKey":"","body":{}},
            {"method":"PUT","collection":"todos","key":"a","idempotencyKey": long,"body":{}},
            {"method":"PUT","collection":"todos","key":"a","idempotencyKey":"tab\there","body":{}},
            {"method":"PUT","collection":"todos","key":"a","body":{}},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in &results[..3] {
        assert_eq!(r["status"], 400);
        assert_eq!(
            r["problem"]["type"],
            format!("{PROBLEMS}invalid-idempotency-key")
        );
    }
    assert_eq!(results[3]["status"], 400, "missing key: {}", results[3]);

    let (status, _, _) = s.get_json("/docs/todos/a").await;
    assert_eq!(status, 404);
    assert_eq!(s.ledger().await, json!({}));
}

async fn same_key_same_request_replays_the_stored_response(store: Backend) {
    let s = Server::start(store);
    let doc = json!({"title": "milk", "tags": ["a", "b"], "n": 1.5});
    let first = s.put("/docs/todos/t1", "k1", &doc).send().await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(!replayed(&first));
    assert!(first.headers().contains_key("date"));
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/api/docs/todos/t1");
    let (_, etag1, body1) = parts(first).await;
    assert_eq!(etag1.as_deref(), Some("\"1\""));

    for _ in 0..3 {
        let again = s.put("/docs/todos/t1", "k1", &doc).send().await.unwrap();
        assert_eq!(again.status(), 201, "the original status is replayed");
        assert!(replayed(&again));
        assert_eq!(again.headers()["location"], location.as_str());
        assert_eq!(again.headers()["content-type"], "application/json");
        let (_, etag, body) = parts(again).await;
        assert_eq!(etag, etag1);
        assert_eq!(body, body1);
    }
    // Key order in the JSON does not change the fingerprint.
    let reordered = r#"{"n":1.5,"tags":["a","b"],"title":"milk"}"#;
    let res = s
        .req(Method::PUT, "/docs/todos/t1")
        .header("Idempotency-Key", sf("k1"))
        .header("Content-Type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(replayed(&res));

    // DELETE replays its 204 too, without bumping the version again.
    let del = s.delete("/docs/todos/t1", "k2").send().await.unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(del.headers()["etag"], "\"2\"");
    let del2 = s.delete("/docs/todos/t1", "k2").send().await.unwrap();
    assert_eq!(del2.status(), 204);
    assert!(replayed(&del2));
    assert_eq!(del2.headers()["etag"], "\"2\"");

    let (status, _, gone) = s.get_json("/docs/todos/t1").await;
    assert_eq!(status, 410);
    assert_eq!(gone["current"]["version"], 2);
    assert_eq!(s.ledger().await, json!({"default/k1": 1, "default/k2": 1}));
}

async fn same_key_different_request_is_422(store: Backend) {
    let s = Server::start(store);
    let res = s
        .put("/docs/todos/a", "k", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let other_body = s
        .put("/docs/todos/a", "k", &json!({"v": 2}))
        .send()
        .await
        .unwrap();
    expect_problem(other_body, 422, "idempotency-key-reused").await;
    let other_path = s
        .put("/docs/todos/b", "k", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    expect_problem(other_path, 422, "idempotency-key-reused").await;
    let other_method = s
        .patch("/docs/todos/a", "k", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    expect_problem(other_method, 422, "idempotency-key-reused").await;
    let other_delete = s.delete("/docs/todos/a", "k").send().await.unwrap();
    expect_problem(other_delete, 422, "idempotency-key-reused").await;

    let (_, etag, doc) = s.get_json("/docs/todos/a").await;
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!(doc, json!({"v": 1}));
    assert_eq!(s.get_json("/docs/todos/b").await.0, 404);
    assert_eq!(s.ledger().await, json!({"default/k": 1}));
}

async fn retry_after_lost_ack_under_if_match_replays_the_2xx_not_412(store: Backend) {
    let s = Server::start(store);
    let res = s
        .put("/docs/notes/n", "create", &json!({"text": "v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    s.set_faults(json!({"sequence": ["lostAck"]})).await;
    let update = || {
        s.put("/docs/notes/n", "update", &json!({"text": "v2"}))
            .header("If-Match", "\"1\"")
    };
    let lost = update().send().await;
    assert!(lost.is_err(), "the ack must be lost: {lost:?}");

    // The effect committed even though the client never heard about it.
    let (_, etag, doc) = s.get_json("/docs/notes/n").await;
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(doc, json!({"text": "v2"}));

    // The retry carries the same key and the same (now stale) If-Match: it gets the original 200.
    let retry = update().send().await.unwrap();
    assert_eq!(retry.status(), 200);
    assert!(replayed(&retry));
    let (_, etag, doc) = parts(retry).await;
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(doc, json!({"text": "v2"}));

    // A genuinely new write with the stale If-Match is a conflict.
    let fresh = s
        .put("/docs/notes/n", "another", &json!({"text": "v2"}))
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    let p = expect_problem(fresh, 412, "version-conflict").await;
    assert_eq!(p["current"]["version"], 2);

    let ledger = s.ledger().await;
    assert_eq!(ledger["default/update"], 1);
    assert_eq!(ledger["default/create"], 1);
    assert!(ledger.get("default/another").is_none());
}

async fn same_key_while_in_flight_is_409_in_use(store: Backend) {
    let s = Server::start(store);
    // Latency is injected while the first request holds its key.
    s.set_faults(json!({"latencyMs": 800, "methods": ["PUT"]}))
        .await;
    let doc = json!({"x": 1});
    let send = |delay_ms: u64| {
        let req = s.put("/docs/c/k", "slow", &doc);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            req.send().await.unwrap()
        })
    };
    // Both arrive well within the first one's 800 ms of processing; whichever the server saw
    // first applies, the other finds the key in flight.
    let (a, b) = (send(0), send(200));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let (winner, loser) = if a.status() == 201 { (a, b) } else { (b, a) };
    assert_eq!(winner.status(), 201);
    assert!(!replayed(&winner));
    let p = expect_problem(loser, 409, "idempotency-key-in-use").await;
    assert_ne!(p["type"], format!("{PROBLEMS}version-conflict"));

    s.set_faults(json!({})).await;
    let third = s.put("/docs/c/k", "slow", &doc).send().await.unwrap();
    assert_eq!(third.status(), 201);
    assert!(replayed(&third));
    assert_eq!(s.ledger().await, json!({"default/slow": 1}));
}

async fn fifty_concurrent(s: &Server, key: &str, path: &str) -> (usize, usize, usize) {
    let doc = json!({"who": "everyone"});
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let req = s.put(path, key, &doc);
        tasks.push(tokio::spawn(async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let was_replayed = replayed(&res);
            let body: Value = res.json().await.unwrap();
            (status, was_replayed, body)
        }));
    }
    let (mut applied, mut replays, mut in_use) = (0, 0, 0);
    for t in tasks {
        let (status, was_replayed, body) = t.await.unwrap();
        match (status, was_replayed) {
            (201, false) => applied += 1,
            (201, true) => {
                assert_eq!(body, doc);
                replays += 1
            }
            (409, _) => {
                assert_eq!(body["type"], format!("{PROBLEMS}idempotency-key-in-use"));
                in_use += 1
            }
            other => panic!("unexpected outcome {other:?}: {body}"),
        }
    }
    (applied, replays, in_use)
}

async fn fifty_concurrent_requests_with_one_key_apply_once(store: Backend) {
    let s = Server::start(store);
    let (applied, replays, in_use) = fifty_concurrent(&s, "burst", "/docs/c/burst").await;
    assert_eq!(applied, 1);
    assert_eq!(applied + replays + in_use, 50);

    // With latency inside the key's processing, the concurrent duplicates must see it in flight.
    s.set_faults(json!({"latencyMs": 300, "methods": ["PUT"]}))
        .await;
    let (applied, replays, in_use) = fifty_concurrent(&s, "burst2", "/docs/c/burst2").await;
    assert_eq!(applied, 1);
    assert!(in_use > 0, "expected some 409s, got {replays} replays");
    assert_eq!(applied + replays + in_use, 50);

    let (_, etag, _) = s.get_json("/docs/c/burst").await;
    assert_eq!(etag.as_deref(), Some("\"1\""), "one effect, one version");
    let (_, etag, _) = s.get_json("/docs/c/burst2").await;
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!(
        s.ledger().await,
        json!({"default/burst": 1, "default/burst2": 1})
    );
    // One stored response: a later retry replays it.
    let res = s
        .put("/docs/c/burst", "burst", &json!({"who": "everyone"}))
        .send()
        .await
        .unwrap();
    assert!(replayed(&res));
}

async fn keys_are_scoped_per_client(store: Backend) {
    let s = Server::start(store);
    let a = s
        .put("/docs/c/a", "shared-key", &json!({"by": "a"}))
        .header("Outbox-Client-Id", "client-a")
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 201);
    let b = s
        .put("/docs/c/b", "shared-key", &json!({"by": "b"}))
        .header("Outbox-Client-Id", "client-b")
        .send()
        .await
        .unwrap();
    assert_eq!(b.status(), 201, "another client's key does not collide");
    assert!(!replayed(&b));
    // Without a client id the default scope is separate again.
    let d = s
        .put("/docs/c/d", "shared-key", &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 201);
    assert_eq!(
        s.ledger().await,
        json!({"client-a/shared-key": 1, "client-b/shared-key": 1, "default/shared-key": 1})
    );
    let bad = s
        .put("/docs/c/e", "k", &json!({}))
        .header("Outbox-Client-Id", "has space")
        .send()
        .await
        .unwrap();
    expect_problem(bad, 400, "invalid-client-id").await;
}

async fn keys_expire_after_the_ttl(store: Backend) {
    let s = Server::start_with(store, &["--idempotency-ttl", "1s"]);
    let doc = json!({"v": 1});
    assert_eq!(
        s.put("/docs/c/x", "old", &doc)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let replay = s.put("/docs/c/x", "old", &doc).send().await.unwrap();
    assert!(replayed(&replay));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let after = s.put("/docs/c/x", "old", &doc).send().await.unwrap();
    assert_eq!(after.status(), 200, "applied again as a new request");
    assert!(!replayed(&after));
    assert_eq!(after.headers()["etag"], "\"2\"");
    assert_eq!(s.ledger().await, json!({"default/old": 2}));
}

async fn errors_are_not_stored_so_a_corrected_retry_applies(store: Backend) {
    let s = Server::start(store);
    assert_eq!(
        s.put("/docs/c/x", "a", &json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let stale = s
        .patch("/docs/c/x", "b", &json!({"y": 1}))
        .header("If-Match", "\"7\"")
        .send()
        .await
        .unwrap();
    expect_problem(stale, 412, "version-conflict").await;
    // Same key, same body, rebased precondition: evaluated afresh.
    let rebased = s
        .patch("/docs/c/x", "b", &json!({"y": 1}))
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(rebased.status(), 200);
    assert!(!replayed(&rebased));
    assert_eq!(s.ledger().await["default/b"], 1);
}

async fn push_ops_share_keys_with_single_requests(store: Backend) {
    let s = Server::start(store);
    let ops = json!([
        {"id": "op1", "method": "PUT", "collection": "c", "key": "p", "idempotencyKey": "p1", "body": {"n": 1}},
        {"id": "op2", "method": "PATCH", "collection": "c", "key": "p", "idempotencyKey": "p2", "ifMatch": "\"1\"", "body": {"m": 2}},
        {"id": "op3", "method": "PATCH", "collection": "c", "key": "p", "idempotencyKey": "p2", "ifMatch": "\"1\"", "body": {"m": 2}},
    ]);
    let body: Value = s
        .push(ops.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = body["results"].as_array().unwrap();
    assert_eq!(r[0]["id"], "op1");
    assert_eq!(r[0]["status"], 201);
    assert_eq!(r[0]["replayed"], false);
    assert_eq!(r[1]["status"], 200);
    assert_eq!(r[1]["doc"], json!({"n": 1, "m": 2}));
    assert_eq!(r[1]["etag"], "\"2\"");
    assert_eq!(r[2]["status"], 200, "a repeated key in one batch replays");
    assert_eq!(r[2]["replayed"], true);
    assert_eq!(r[2]["version"], 2);

    let again: Value = s.push(ops).send().await.unwrap().json().await.unwrap();
    for (i, r) in again["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["replayed"], true, "op {i}: {r}");
    }
    assert_eq!(again["results"][0]["status"], 201);

    // The op delivered by push replays when retried as a single request.
    let single = s
        .patch("/docs/c/p", "p2", &json!({"m": 2}))
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), 200);
    assert!(replayed(&single));
    assert_eq!(single.headers()["etag"], "\"2\"");
    assert_eq!(s.ledger().await, json!({"default/p1": 1, "default/p2": 1}));
}

/// A client may retry long after its op was applied, when the document has moved on through
/// other writes (even a delete and a re-create): the retry still gets the stored, older answer.
async fn replays_return_the_stored_answer_after_the_doc_moved_on(store: Backend) {
    let s = Server::start(store);
    let create = || {
        s.put("/docs/c/d", "create", &json!({"v": 1}))
            .header("If-None-Match", "*")
    };
    let update_op = json!({"id": "u", "method": "PUT", "collection": "c", "key": "d",
        "idempotencyKey": "update", "ifMatch": "\"1\"", "body": {"v": 2}});
    let delete_op = json!({"id": "d", "method": "DELETE", "collection": "c", "key": "d",
        "idempotencyKey": "delete", "ifMatch": "\"2\""});
    assert_eq!(create().send().await.unwrap().status(), 201);
    let body: Value = s
        .push(json!([update_op, delete_op]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["results"][0]["version"], 2);
    assert_eq!(body["results"][1]["version"], 3);
    let recreated = s
        .put("/docs/c/d", "recreate", &json!({"v": 4}))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(recreated.headers()["etag"], "\"4\"");
    let patched = s
        .patch("/docs/c/d", "patch", &json!({"w": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.headers()["etag"], "\"5\"");

    // Single request: the 201 of version 1, although the doc is live at 5 and If-None-Match
    // would now fail.
    let res = create().send().await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(replayed(&res));
    assert_eq!(res.headers()["location"], "/api/docs/c/d");
    let (_, etag, doc) = parts(res).await;
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!(doc, json!({"v": 1}));

    // In a push, both stale-precondition ops replay their own versions, flagged as replayed.
    let body: Value = s
        .push(json!([update_op, delete_op]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = &body["results"];
    assert_eq!(
        r[0],
        json!({"id": "u", "status": 200, "version": 2, "etag": "\"2\"", "deleted": false,
               "doc": {"v": 2}, "replayed": true})
    );
    assert_eq!(
        r[1],
        json!({"id": "d", "status": 204, "version": 3, "etag": "\"3\"", "deleted": true,
               "replayed": true})
    );
    // The pushed update retried as a single request replays as well.
    let res = s
        .put("/docs/c/d", "update", &json!({"v": 2}))
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(replayed(&res));
    assert_eq!(res.headers()["etag"], "\"2\"");

    let (_, etag, doc) = s.get_json("/docs/c/d").await;
    assert_eq!(etag.as_deref(), Some("\"5\""), "no replay wrote anything");
    assert_eq!(doc, json!({"v": 4, "w": 5}));
    assert_eq!(
        s.ledger().await,
        json!({"default/create": 1, "default/update": 1, "default/delete": 1,
               "default/recreate": 1, "default/patch": 1})
    );
}
