//! `If-None-Match: *` is how the client creates without overwriting, also after a delete: a
//! tombstone counts as "not existing", a live document does not (PROTOCOL §2).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

on_both_stores!(
    create_only_put_recreates_over_a_tombstone_and_conflicts_with_a_live_doc,
    create_only_ops_in_a_push_behave_the_same,
);

async fn create_only_put_recreates_over_a_tombstone_and_conflicts_with_a_live_doc(store: Backend) {
    let s = Server::start(store);
    s.put("/docs/c/a", "k1", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    let del = s.delete("/docs/c/a", "k2").send().await.unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(del.headers()["etag"], "\"2\"");

    let create = || {
        s.put("/docs/c/a", "k3", &json!({"v": 3}))
            .header("If-None-Match", "*")
    };
    let res = create().send().await.unwrap();
    assert_eq!(res.status(), 201, "a tombstone does not count as existing");
    assert!(!replayed(&res));
    assert_eq!(res.headers()["location"], "/api/docs/c/a");
    let (_, etag, doc) = parts(res).await;
    assert_eq!(
        etag.as_deref(),
        Some("\"3\""),
        "above the tombstone's version"
    );
    assert_eq!(doc, json!({"v": 3}));
    let (status, etag, doc) = s.get_json("/docs/c/a").await;
    assert_eq!((status.as_u16(), etag.as_deref()), (200, Some("\"3\"")));
    assert_eq!(doc, json!({"v": 3}));

    // The same create with a new key now meets the live document.
    let res = s
        .put("/docs/c/a", "k4", &json!({"v": 4}))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["etag"], "\"3\"");
    let p = expect_problem(res, 412, "version-conflict").await;
    assert_eq!(
        p["current"],
        json!({"version": 3, "etag": "\"3\"", "deleted": false, "doc": {"v": 3}})
    );
    // Its first attempt's key is still replayed, not turned into a 412.
    let res = create().send().await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(replayed(&res));

    let ledger = s.ledger().await;
    assert_eq!(
        ledger,
        json!({"default/k1": 1, "default/k2": 1, "default/k3": 1})
    );
}

async fn create_only_ops_in_a_push_behave_the_same(store: Backend) {
    let s = Server::start(store);
    let put = |key: &str, idem: &str, v: u32| {
        json!({"method": "PUT", "collection": "c", "key": key, "idempotencyKey": idem,
               "ifNoneMatch": "*", "body": {"v": v}})
    };
    let del = |key: &str, idem: &str| json!({"method": "DELETE", "collection": "c", "key": key, "idempotencyKey": idem});
    let results = |body: Value| body["results"].as_array().unwrap().clone();
    let first = s
        .push(json!([
            put("a", "p1", 1),
            del("a", "p2"),
            put("live", "p3", 1)
        ]))
        .send()
        .await
        .unwrap();
    let r = results(first.json().await.unwrap());
    assert_eq!(
        (r[0]["status"].as_u64(), r[0]["version"].as_u64()),
        (Some(201), Some(1))
    );
    assert_eq!(
        (r[1]["status"].as_u64(), r[1]["version"].as_u64()),
        (Some(204), Some(2))
    );
    assert_eq!(r[2]["status"], 201);

    let second = s
        .push(json!([put("a", "p4", 4), put("live", "p5", 5)]))
        .send()
        .await
        .unwrap();
    let r = results(second.json().await.unwrap());
    assert_eq!(
        r[0]["status"], 201,
        "recreated over the tombstone: {}",
        r[0]
    );
    assert_eq!(r[0]["version"], 3);
    assert_eq!(r[0]["etag"], "\"3\"");
    assert_eq!(r[0]["deleted"], false);
    assert_eq!(r[0]["doc"], json!({"v": 4}));
    assert_eq!(r[0]["replayed"], false);
    assert_eq!(r[1]["status"], 412, "{}", r[1]);
    assert_eq!(
        r[1]["problem"]["type"],
        format!("{PROBLEMS}version-conflict")
    );
    assert_eq!(
        r[1]["problem"]["current"],
        json!({"version": 1, "etag": "\"1\"", "deleted": false, "doc": {"v": 1}})
    );
    let (status, etag, _) = s.get_json("/docs/c/live").await;
    assert_eq!((status.as_u16(), etag.as_deref()), (200, Some("\"1\"")));
    assert!(s.ledger().await.get("default/p5").is_none());
    let res = s.req(Method::GET, "/docs/c/a").send().await.unwrap();
    assert_eq!(res.headers()["etag"], "\"3\"");
}
