//! Browser tests for the sync history and health: entries persist across a reload, stay within their
//! bounds, ride on the group commits, and record what a 429 said; and the schema upgrade that added the
//! history store keeps every op of a database made before it.
#![cfg(target_arch = "wasm32")]

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use js_sys::{Array, Promise};
use outbox_sync::Outbox;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

/// Options with a scripted transport (tests/support/harness.js) and a fresh name.
fn scripted(name: &str, script: &str, extra: &str) -> JsValue {
    let scripted = scripted_transport(&json(script));
    let options = json(extra);
    set(&options, "name", &name.into());
    set(&options, "transport", &get(&scripted, "transport"));
    options
}

fn put(key: &str) -> JsValue {
    json(&format!(
        r#"{{"collection":"notes","key":"{key}","op":"put","value":{{"t":"{key}"}}}}"#
    ))
}

async fn list(promise: Promise) -> Vec<JsValue> {
    settle(promise)
        .await
        .expect("a list")
        .unchecked_into::<Array>()
        .to_vec()
}

async fn history(outbox: &Outbox, query: &str) -> Vec<JsValue> {
    list(outbox.history(json(query))).await
}

fn text(value: &JsValue, path: &str) -> Option<String> {
    get(value, path).as_string()
}

fn num(value: &JsValue, path: &str) -> Option<f64> {
    get(value, path).as_f64()
}

/// The records of the `history` store, as stored (JSON text).
async fn stored_history(name: &str) -> Vec<String> {
    let dump = settle(dump_database(name))
        .await
        .unwrap()
        .as_string()
        .unwrap();
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    dump["history"]
        .as_array()
        .expect("a history store")
        .iter()
        .map(|r| r.as_str().expect("JSON text").to_owned())
        .collect()
}

async fn enqueue_and_drain(outbox: &Outbox, keys: &[&str]) {
    for key in keys {
        settle(outbox.enqueue(put(key))).await.unwrap();
    }
    settle(outbox.drain()).await.unwrap();
}

#[wasm_bindgen_test]
async fn the_history_survives_a_reload_newest_first() {
    let name = fresh_name("history-reload");
    let options = scripted(&name, "{}", r#"{"autoDrain": false, "maxBatchOps": 1}"#);
    let outbox = open(&options).await;
    let (seen, watcher) = recorder();
    let _unwatch = outbox.watch_history(watcher).unwrap();
    enqueue_and_drain(&outbox, &["a", "b"]).await;
    let before = history(&outbox, "{}").await;
    let kinds: Vec<_> = before.iter().map(|e| text(e, "kind").unwrap()).collect();
    assert_eq!(kinds, ["drain", "send", "send"], "newest first");
    assert_eq!(seen.length(), 3, "the watcher saw every entry");
    let drain = &before[0];
    assert_eq!(text(drain, "trigger").as_deref(), Some("manual"));
    assert_eq!(num(drain, "items"), Some(2.0), "two ops settled");
    let send = &before[1];
    assert_eq!(text(send, "outcome").as_deref(), Some("success"));
    assert_eq!(num(send, "status"), Some(200.0));
    assert!(
        get(send, "endpoint").is_null(),
        "a custom transport's URLs are its own"
    );
    assert!(get(send, "rateLimit").is_null());
    assert!(num(send, "endedAt").unwrap() >= num(send, "startedAt").unwrap());
    let ids: Vec<f64> = before.iter().map(|e| num(e, "id").unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "ids grow: {ids:?}");
    let health = outbox.health().unwrap();
    assert_eq!(get(&health, "healthy").as_bool(), Some(true));
    assert_eq!(num(&health, "successRate"), Some(1.0));
    settle(outbox.close()).await.unwrap();

    let outbox = open(&options).await;
    let after = history(&outbox, "{}").await;
    let ids_after: Vec<f64> = after.iter().map(|e| num(e, "id").unwrap()).collect();
    assert_eq!(ids_after, ids, "every entry came back");
    enqueue_and_drain(&outbox, &["c"]).await;
    let newest = history(&outbox, r#"{"limit": 1, "kind": "send"}"#).await;
    assert_eq!(newest.len(), 1);
    assert!(num(&newest[0], "id").unwrap() > ids[0], "ids go on growing");
    let failures = history(&outbox, r#"{"outcome": "failure"}"#).await;
    assert!(failures.is_empty());
    let error = settle(outbox.history(json(r#"{"kind": "push"}"#)))
        .await
        .expect_err("an unknown kind");
    assert_eq!(text(&error, "code").as_deref(), Some("INVALID_CONFIG"));
    settle(outbox.close()).await.unwrap();
}

#[wasm_bindgen_test]
async fn entries_ride_on_the_group_commit_of_the_answer() {
    let name = fresh_name("history-ride");
    let options = scripted(&name, "{}", r#"{"autoDrain": false}"#);
    let outbox = open(&options).await;
    settle(outbox.enqueue(put("a"))).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    settle(sleep(50)).await.unwrap();
    // Well before a lone flush could run (1 s): the send's entry went with the ack's commit.
    let stored = stored_history(&name).await;
    assert!(
        stored.iter().any(|r| r.contains(r#""kind":"send""#)),
        "{stored:?}"
    );
    settle(outbox.close()).await.unwrap();
    assert_eq!(
        stored_history(&name).await.len(),
        2,
        "close writes the drain's"
    );
}

#[wasm_bindgen_test]
async fn bounded_by_count_in_memory_and_in_storage() {
    let name = fresh_name("history-count");
    let options = scripted(
        &name,
        "{}",
        r#"{"autoDrain": false, "maxBatchOps": 1, "history": {"maxEntries": 3}}"#,
    );
    let outbox = open(&options).await;
    enqueue_and_drain(&outbox, &["a", "b", "c", "d"]).await;
    let entries = history(&outbox, "{}").await;
    assert_eq!(entries.len(), 3);
    assert_eq!(text(&entries[0], "kind").as_deref(), Some("drain"));
    settle(outbox.close()).await.unwrap();
    let stored = stored_history(&name).await;
    assert_eq!(stored.len(), 3, "the range delete trimmed the store too");
    let outbox = open(&options).await;
    assert_eq!(history(&outbox, "{}").await.len(), 3);
    settle(outbox.close()).await.unwrap();
}

#[wasm_bindgen_test]
async fn bounded_by_age_at_record_and_at_open() {
    let name = fresh_name("history-age");
    let options = scripted(
        &name,
        "{}",
        r#"{"autoDrain": false, "history": {"maxAgeMs": 300}}"#,
    );
    let outbox = open(&options).await;
    enqueue_and_drain(&outbox, &["a"]).await;
    assert_eq!(history(&outbox, "{}").await.len(), 2);
    settle(sleep(400)).await.unwrap();
    enqueue_and_drain(&outbox, &["b"]).await;
    let entries = history(&outbox, "{}").await;
    assert_eq!(entries.len(), 2, "the first two aged out");
    settle(outbox.close()).await.unwrap();
    assert_eq!(stored_history(&name).await.len(), 2);

    settle(sleep(400)).await.unwrap();
    let outbox = open(&options).await;
    assert!(history(&outbox, "{}").await.is_empty(), "too old at open");
    settle(outbox.close()).await.unwrap();
    assert!(stored_history(&name).await.is_empty());
}

#[wasm_bindgen_test]
async fn a_429_is_recorded_with_its_pacing_headers() {
    let script = r#"[{"status": 429, "headers": {
        "Retry-After": "30", "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
        "RateLimit": "\"default\";r=0;t=60", "RateLimit-Policy": "\"default\";q=100;w=60"}}]"#;
    let mock = mock_fetch(&json(script));
    let options = json(r#"{"endpoint": "https://api.example/v1", "autoDrain": false}"#);
    set(&options, "name", &fresh_name("history-429").into());
    let outbox = open(&options).await;
    settle(outbox.enqueue(put("a b"))).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    let sends = history(&outbox, r#"{"kind": "send"}"#).await;
    let restore: js_sys::Function = get(&mock, "restore").unchecked_into();
    restore.call0(&JsValue::NULL).unwrap();
    assert_eq!(sends.len(), 1);
    let entry = &sends[0];
    assert_eq!(num(entry, "status"), Some(429.0));
    assert_eq!(text(entry, "outcome").as_deref(), Some("failure"));
    assert_eq!(text(entry, "errorCode").as_deref(), Some("rate_limited"));
    assert_eq!(
        text(entry, "endpoint").as_deref(),
        Some("/v1/docs/notes/a%20b")
    );
    assert_eq!(num(entry, "rateLimit.limit"), Some(100.0));
    assert_eq!(num(entry, "rateLimit.remaining"), Some(0.0));
    assert_eq!(num(entry, "rateLimit.retryAfterMs"), Some(30_000.0));
    assert_eq!(
        text(entry, "rateLimit.policy").as_deref(),
        Some("\"default\";q=100;w=60")
    );
    let ended = num(entry, "endedAt").unwrap();
    assert_eq!(num(entry, "rateLimit.resetAt"), Some(ended + 60_000.0));

    let health = outbox.health().unwrap();
    assert_eq!(num(&health, "rateLimit.violations"), Some(1.0));
    assert_eq!(
        text(&health, "rateLimit.lastViolation.endpoint").as_deref(),
        Some("/v1/docs/notes/a%20b")
    );
    assert_eq!(get(&health, "healthy").as_bool(), Some(false));
    let alerts: Array = get(&health, "alerts").unchecked_into();
    let types: Vec<_> = alerts.iter().map(|a| text(&a, "type").unwrap()).collect();
    assert_eq!(types, ["rate_limited"]);
    assert!(num(&alerts.get(0), "until").unwrap() > ended);
    settle(outbox.close()).await.unwrap();
}

/// The storage cost of the history: the bytes of the stored records (JSON text), per 1,000 entries.
#[wasm_bindgen_test]
async fn the_storage_cost_of_a_thousand_entries() {
    let name = fresh_name("history-cost");
    let options = scripted(&name, "{}", r#"{"autoDrain": false, "maxBatchOps": 1}"#);
    let outbox = open(&options).await;
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    enqueue_and_drain(&outbox, &keys).await;
    settle(outbox.close()).await.unwrap();
    let stored = stored_history(&name).await;
    assert_eq!(stored.len(), 201);
    let bytes: usize = stored.iter().map(String::len).sum();
    let per_thousand = bytes * 1000 / stored.len();
    console_log!("history storage: {per_thousand} bytes of records per 1,000 entries");
    assert!(per_thousand < 400_000, "{per_thousand}");
}

#[wasm_bindgen_test]
async fn a_schema_2_database_keeps_every_op_through_the_upgrade() {
    let name = fresh_name("history-upgrade");
    let v2 = Database::open(name.as_str())
        .with_version(2u32)
        .with_on_upgrade_needed(|_, db| {
            db.create_object_store("meta").build()?;
            db.create_object_store("ops").build()?;
            db.create_object_store("docs").build()?;
            Ok(())
        })
        .await
        .expect("create v2");
    let tx = v2
        .transaction(["ops", "meta"])
        .with_mode(TransactionMode::Readwrite)
        .build()
        .unwrap();
    let ops = tx.object_store("ops").unwrap();
    let ids: Vec<String> = (1..=3)
        .map(|i| format!("0b9d0c7e-6b7a-4e55-9f7c-2b8f2d7f6a1{i}"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let record = format!(
            r#"{{"format_version":2,"id":"{id}","idempotency_key":"5f0e6f3a-8a7b-4c3d-9e2f-1a2b3c4d5e6{i}",
            "seq":{i},"collection":"todos","key":"k{i}","kind":{{"type":"put"}},"payload":{{"n":{i}}},
            "created_at":1700000000000,"state":"pending"}}"#
        );
        ops.put(record.as_str())
            .with_key(id.as_str())
            .await
            .unwrap();
    }
    tx.object_store("meta")
        .unwrap()
        .put("c-old")
        .with_key("client_id")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    v2.close();

    let options = scripted(&name, "{}", r#"{"autoDrain": false, "paused": true}"#);
    let outbox = open(&options).await;
    let pending = list(outbox.pending()).await;
    let found: Vec<_> = pending.iter().map(|o| text(o, "id").unwrap()).collect();
    assert_eq!(found, ids, "every op of the old schema is there, in order");
    assert!(history(&outbox, "{}").await.is_empty());
    settle(outbox.close()).await.unwrap();
    let dump = settle(dump_database(&name))
        .await
        .unwrap()
        .as_string()
        .unwrap();
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(dump["ops"].as_array().map(Vec::len), Some(3));
    let meta = dump["meta"].as_array().unwrap();
    assert!(
        meta.iter().any(|m| m == "c-old"),
        "meta records are kept too"
    );
    assert!(dump["history"].is_array(), "the new store exists");
}
