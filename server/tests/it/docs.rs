use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

on_both_stores!(
    every_write_bumps_the_version_and_delete_leaves_a_tombstone,
    version_conflicts_return_the_current_doc,
    merge_patch_matches_rfc7386_appendix_a,
    bad_input_gets_the_right_problem_and_writes_nothing,
    oversized_batches_and_unknown_routes,
    cors_allows_local_origins_and_exposes_the_protocol_headers,
    www_serves_static_files_next_to_the_api,
);

async fn every_write_bumps_the_version_and_delete_leaves_a_tombstone(store: Backend) {
    let s = Server::start(store);
    let res = s
        .put("/docs/todos/a", "1", &json!({"t": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            res.status().as_u16(),
            res.headers()["etag"].to_str().unwrap()
        ),
        (201, "\"1\"")
    );
    let res = s
        .put("/docs/todos/a", "2", &json!({"t": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            res.status().as_u16(),
            res.headers()["etag"].to_str().unwrap()
        ),
        (200, "\"2\"")
    );
    assert!(
        res.headers().get("location").is_none(),
        "Location only on create"
    );
    let res = s
        .patch("/docs/todos/a", "3", &json!({"u": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["etag"], "\"3\"");
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"t": 2, "u": 3}));

    let (status, etag, doc) = s.get_json("/docs/todos/a").await;
    assert_eq!((status.as_u16(), etag.as_deref()), (200, Some("\"3\"")));
    assert_eq!(doc, json!({"t": 2, "u": 3}));
    let not_modified = s
        .req(Method::GET, "/docs/todos/a")
        .header("If-None-Match", "\"3\"")
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    let res = s.delete("/docs/todos/a", "4").send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["etag"], "\"4\"");
    let gone = s.req(Method::GET, "/docs/todos/a").send().await.unwrap();
    let p = expect_problem(gone, 410, "gone").await;
    assert_eq!(
        p["current"],
        json!({"version": 4, "etag": "\"4\"", "deleted": true, "doc": null})
    );
    let again = s.delete("/docs/todos/a", "5").send().await.unwrap();
    expect_problem(again, 410, "gone").await;
    let patch = s
        .patch("/docs/todos/a", "6", &json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(patch, 410, "gone").await;
    let missing = s.delete("/docs/todos/never", "7").send().await.unwrap();
    expect_problem(missing, 404, "not-found").await;
    let missing = s
        .patch("/docs/todos/never", "8", &json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(missing, 404, "not-found").await;

    // Re-creating continues the version sequence, so a version is never reused for a key; a
    // tombstone does not count as existing for If-None-Match.
    let res = s
        .put("/docs/todos/a", "9", &json!({"t": 9}))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            res.status().as_u16(),
            res.headers()["etag"].to_str().unwrap()
        ),
        (201, "\"5\"")
    );

    // Keys are arbitrary UTF-8 path segments.
    let res = s
        .put("/docs/todos/h%C3%A9llo%20w%2Frld", "10", &json!(1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()["location"],
        "/api/docs/todos/h%C3%A9llo%20w%2Frld"
    );
    let (status, _, doc) = s.get_json("/docs/todos/h%C3%A9llo%20w%2Frld").await;
    assert_eq!((status.as_u16(), doc), (200, json!(1)));
}

async fn version_conflicts_return_the_current_doc(store: Backend) {
    let s = Server::start(store);
    s.put("/docs/c/x", "a", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    s.put("/docs/c/x", "b", &json!({"v": 2}))
        .send()
        .await
        .unwrap();

    let expected_current =
        json!({"version": 2, "etag": "\"2\"", "deleted": false, "doc": {"v": 2}});
    for (method, if_match) in [
        (Method::PUT, "\"1\""),
        (Method::PATCH, "\"1\""),
        (Method::DELETE, "\"1\""),
        (Method::PUT, "W/\"2\""),
        (Method::PUT, "\"7\", \"9\""),
    ] {
        let req = match method {
            Method::PUT => s.put("/docs/c/x", "c", &json!({"v": 3})),
            Method::PATCH => s.patch("/docs/c/x", "c", &json!({"v": 3})),
            _ => s.delete("/docs/c/x", "c"),
        };
        let res = req.header("If-Match", if_match).send().await.unwrap();
        assert_eq!(res.headers()["etag"], "\"2\"", "{method} {if_match}");
        let p = expect_problem(res, 412, "version-conflict").await;
        assert_eq!(p["current"], expected_current);
    }
    // A list containing the current version matches.
    let ok = s
        .put("/docs/c/x", "d", &json!({"v": 3}))
        .header("If-Match", "\"1\", \"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let exists = s
        .put("/docs/c/x", "e", &json!({"v": 4}))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    let p = expect_problem(exists, 412, "version-conflict").await;
    assert_eq!(p["current"]["doc"], json!({"v": 3}));
    assert_eq!(p["current"]["version"], 3);

    let create = s
        .put("/docs/c/new", "f", &json!({"v": 1}))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 201);
    let absent = s
        .put("/docs/c/absent", "g", &json!({}))
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    let p = expect_problem(absent, 412, "version-conflict").await;
    assert_eq!(p["current"], Value::Null);

    let (_, etag, doc) = s.get_json("/docs/c/x").await;
    assert_eq!((etag.as_deref(), doc), (Some("\"3\""), json!({"v": 3})));
    let ledger = s.ledger().await;
    assert!(ledger.get("default/c").is_none() && ledger.get("default/e").is_none());
}

/// RFC 7386 Appendix A, every row, through PUT then PATCH.
async fn merge_patch_matches_rfc7386_appendix_a(store: Backend) {
    let cases: Vec<(Value, Value, Value)> = vec![
        (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
        (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
        (json!({"a":"b"}), json!({"a":null}), json!({})),
        (
            json!({"a":"b","b":"c"}),
            json!({"a":null}),
            json!({"b":"c"}),
        ),
        (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
        (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
        (
            json!({"a":{"b":"c"}}),
            json!({"a":{"b":"d","c":null}}),
            json!({"a":{"b":"d"}}),
        ),
        (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a":"b"}), json!(["c"]), json!(["c"])),
        (json!({"a":"foo"}), json!(null), json!(null)),
        (json!({"a":"foo"}), json!("bar"), json!("bar")),
        (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
        (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
        (
            json!({}),
            json!({"a":{"bb":{"ccc":null}}}),
            json!({"a":{"bb":{}}}),
        ),
    ];
    let s = Server::start(store);
    for (i, (target, patch, expected)) in cases.into_iter().enumerate() {
        let path = format!("/docs/rfc/case{i}");
        let put = s
            .put(&path, &format!("put{i}"), &target)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
        let res = s
            .patch(&path, &format!("patch{i}"), &patch)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "case {i}");
        assert_eq!(res.headers()["etag"], "\"2\"");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            expected,
            "case {i} response"
        );
        let (_, _, stored) = s.get_json(&path).await;
        assert_eq!(stored, expected, "case {i} stored");
    }
}

async fn bad_input_gets_the_right_problem_and_writes_nothing(store: Backend) {
    let s = Server::start(store);
    s.put("/docs/c/x", "seed", &json!({"v": 1}))
        .send()
        .await
        .unwrap();

    let malformed = s
        .req(Method::PUT, "/docs/c/x")
        .header("Idempotency-Key", sf("m1"))
        .header("Content-Type", "application/json")
        .body("{\"v\": ")
        .send()
        .await
        .unwrap();
    expect_problem(malformed, 400, "malformed-json").await;
    let malformed_patch = s
        .req(Method::PATCH, "/docs/c/x")
        .header("Idempotency-Key", sf("m2"))
        .header("Content-Type", "application/merge-patch+json")
        .body("nope")
        .send()
        .await
        .unwrap();
    expect_problem(malformed_patch, 400, "malformed-json").await;

    let text = s
        .req(Method::PUT, "/docs/c/x")
        .header("Idempotency-Key", sf("m3"))
        .header("Content-Type", "text/plain")
        .body("{\"v\": 2}")
        .send()
        .await
        .unwrap();
    expect_problem(text, 415, "unsupported-media-type").await;
    let no_type = s
        .req(Method::PUT, "/docs/c/x")
        .header("Idempotency-Key", sf("m3b"))
        .body("{\"v\": 2}")
        .send()
        .await
        .unwrap();
    expect_problem(no_type, 415, "unsupported-media-type").await;
    let json_patch = s
        .req(Method::PATCH, "/docs/c/x")
        .header("Idempotency-Key", sf("m4"))
        .header("Content-Type", "application/json")
        .body("{\"v\": 2}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_patch.headers()["accept-patch"],
        "application/merge-patch+json"
    );
    expect_problem(json_patch, 415, "unsupported-media-type").await;

    let big = format!("{{\"blob\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let too_large = s
        .req(Method::PUT, "/docs/c/x")
        .header("Idempotency-Key", sf("m5"))
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    expect_problem(too_large, 413, "payload-too-large").await;

    for bad in ["1", "\"1", "W/1", "\"1\" \"2\""] {
        let res = s
            .put("/docs/c/x", "m6", &json!({"v": 2}))
            .header("If-Match", bad)
            .send()
            .await
            .unwrap();
        expect_problem(res, 400, "invalid-precondition").await;
    }
    let bad_inm = s
        .put("/docs/c/x", "m7", &json!({"v": 2}))
        .header("If-None-Match", "star")
        .send()
        .await
        .unwrap();
    expect_problem(bad_inm, 400, "invalid-precondition").await;

    let bad_collection = s
        .put("/docs/bad%20coll/x", "m8", &json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(bad_collection, 400, "invalid-request").await;
    let long_key = format!("/docs/c/{}", "k".repeat(300));
    let bad_key = s.put(&long_key, "m9", &json!({})).send().await.unwrap();
    expect_problem(bad_key, 400, "invalid-request").await;
    let delete_body = s
        .delete("/docs/c/x", "m10")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_problem(delete_body, 400, "invalid-request").await;

    // The push endpoint validates the batch as a whole...
    let res = s
        .req(Method::POST, "/push")
        .header("Content-Type", "application/json")
        .body("[oops")
        .send()
        .await
        .unwrap();
    expect_problem(res, 400, "malformed-json").await;
    let res = s
        .req(Method::POST, "/push")
        .header("Content-Type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    expect_problem(res, 400, "invalid-request").await;
    let res = s
        .req(Method::POST, "/push")
        .header("Content-Type", "text/plain")
        .body("{\"ops\": []}")
        .send()
        .await
        .unwrap();
    expect_problem(res, 415, "unsupported-media-type").await;
    // ...and each op on its own.
    let res: Value = s
        .push(json!([
            {"method": "POST", "collection": "c", "key": "x", "idempotencyKey": "o1"},
            {"method": "PUT", "collection": "c", "key": "x", "idempotencyKey": "o2", "ifMatch": "2", "body": {}},
            {"method": "DELETE", "collection": "c", "key": "x", "idempotencyKey": "o3", "body": {}},
            {"method": "PUT", "collection": "c", "key": "x", "idempotencyKey": "o4", "body": {}, "extra": 1},
            {"method": "PUT", "collection": "c!", "key": "x", "idempotencyKey": "o5", "body": {}},
            // Dot segments: no URL could address such a document.
            {"method": "PUT", "collection": "c", "key": "..", "idempotencyKey": "o6", "body": {}},
            {"method": "PUT", "collection": ".", "key": "x", "idempotencyKey": "o7", "body": {}},
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slugs: Vec<String> = res["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], 400, "{r}");
            r["problem"]["type"]
                .as_str()
                .unwrap()
                .trim_start_matches(PROBLEMS)
                .to_owned()
        })
        .collect();
    assert_eq!(
        slugs,
        [
            "invalid-request",
            "invalid-precondition",
            "invalid-request",
            "invalid-request",
            "invalid-request",
            "invalid-request",
            "invalid-request"
        ]
    );

    let (_, etag, doc) = s.get_json("/docs/c/x").await;
    assert_eq!((etag.as_deref(), doc), (Some("\"1\""), json!({"v": 1})));
    assert_eq!(s.ledger().await, json!({"default/seed": 1}));
    let (changes, _) = s.pull_all("", 100).await;
    assert_eq!(changes.len(), 1);
}

async fn oversized_batches_and_unknown_routes(store: Backend) {
    let s = Server::start_with(store, &["--max-batch-ops", "3"]);
    let op = |i: u32| json!({"method": "PUT", "collection": "c", "key": format!("k{i}"), "idempotencyKey": format!("i{i}"), "body": {}});
    let res = s
        .push(json!([op(1), op(2), op(3), op(4)]))
        .send()
        .await
        .unwrap();
    let p = expect_problem(res, 413, "batch-too-large").await;
    assert_eq!(p["maxOps"], 3);
    assert_eq!(s.ledger().await, json!({}));
    let res = s.push(json!([op(1), op(2), op(3)])).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = s.push(json!([])).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"results": []}));

    let res = s.req(Method::GET, "/nope").send().await.unwrap();
    expect_problem(res, 404, "not-found").await;
    let res = s.req(Method::POST, "/docs/c/x").send().await.unwrap();
    expect_problem(res, 405, "method-not-allowed").await;
    let res = s.req(Method::GET, "/health").send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

async fn cors_allows_local_origins_and_exposes_the_protocol_headers(store: Backend) {
    let s = Server::start(store);
    let preflight = |origin: &'static str| {
        s.req(Method::OPTIONS, "/docs/c/x")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PUT")
            .header(
                "Access-Control-Request-Headers",
                "idempotency-key,if-match,outbox-client-id,authorization",
            )
    };
    let ok = preflight("http://localhost:5173").send().await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for h in [
        "idempotency-key",
        "if-match",
        "if-none-match",
        "content-type",
        "authorization",
        "outbox-client-id",
    ] {
        assert!(allowed.contains(h), "{h} not allowed: {allowed}");
    }
    let ok = preflight("http://127.0.0.1:9000").send().await.unwrap();
    assert!(ok.headers().contains_key("access-control-allow-origin"));
    let evil = preflight("https://evil.example").send().await.unwrap();
    assert!(!evil.headers().contains_key("access-control-allow-origin"));

    let res = s
        .put("/docs/c/x", "k", &json!({}))
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for h in [
        "etag",
        "date",
        "retry-after",
        "ratelimit",
        "ratelimit-policy",
        "x-ratelimit-remaining",
        "idempotent-replayed",
        "idempotency-retention",
    ] {
        assert!(
            exposed.split(',').any(|e| e.trim() == h),
            "{h} not exposed: {exposed}"
        );
    }

    let strict = Server::start_with(store, &["--cors-origin", "https://app.example"]);
    let res = strict
        .req(Method::OPTIONS, "/push")
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let res = strict
        .req(Method::OPTIONS, "/push")
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}

async fn www_serves_static_files_next_to_the_api(store: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>demo</h1>").unwrap();
    let s = Server::start_with(store, &["--www", dir.path().to_str().unwrap()]);
    let page = s.client.get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), "<h1>demo</h1>");
    let res = s.req(Method::GET, "/health").send().await.unwrap();
    assert_eq!(res.status(), 200);
}
