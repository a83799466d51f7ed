//! Browser tests for the runtime's side of exactly-once: what a request may carry and when it may
//! leave, storage that stops working, the randomness of keys, and bodies that stay byte-identical
//! across a reload. Real IndexedDB in headless Chromium; each test uses a fresh database name.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use js_sys::{Array, Promise};
use outbox_sync::Outbox;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

#[wasm_bindgen(module = "/tests/support/harness.js")]
extern "C" {
    #[wasm_bindgen(js_name = heldTransport)]
    fn held_transport() -> JsValue;
    #[wasm_bindgen(js_name = spyRandomValues)]
    fn spy_random_values() -> JsValue;
}

/// Opens an outbox on a held transport; the transport learns how to read the outbox's commit count.
async fn open_held(name: &str, extra: &str) -> (Rc<Outbox>, JsValue) {
    let held = held_transport();
    let options = json(extra);
    set(&options, "name", &name.into());
    set(&options, "transport", &get(&held, "transport"));
    let outbox = Rc::new(open(&options).await);
    let reader = Rc::clone(&outbox);
    let counter = js_sys::Object::new();
    let count = Closure::<dyn Fn() -> f64>::new(move || reader.transactions_committed());
    set(&counter, "__transactionsCommitted", &count.into_js_value());
    call(&held, "setOutbox", &counter);
    (outbox, held)
}

fn call(object: &JsValue, method: &str, arg: &JsValue) -> JsValue {
    let f: js_sys::Function = get(object, method).unchecked_into();
    f.call1(object, arg).expect("call")
}

fn log(held: &JsValue) -> Vec<JsValue> {
    get(held, "log").unchecked_into::<Array>().to_vec()
}

fn answer(entry: &JsValue, answer: &str) {
    call(entry, "answer", &json(answer));
}

fn put(key: &str, value: &str) -> JsValue {
    let op = json(&format!(
        r#"{{"collection":"notes","key":"{key}","op":"put"}}"#
    ));
    set(&op, "value", &json(value));
    op
}

/// Lets queued microtasks and timers run (commits, sends, replies).
async fn turn() {
    settle(sleep(20)).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_request_leaves_only_once_its_in_flight_mark_and_new_key_are_committed() {
    let (outbox, held) = open_held(
        &fresh_name("barrier"),
        r#"{"autoDrain": false, "maxBatchOps": 1}"#,
    )
    .await;
    let queued = settle(outbox.enqueue(put("a", "1"))).await.unwrap();
    let id = get(&queued, "id").as_string().unwrap();

    let before = outbox.transactions_committed();
    let _ = outbox.drain();
    turn().await;
    let first = &log(&held)[0];
    assert!(
        get(first, "committed").as_f64().unwrap() > before,
        "the first send waited for the commit of its in-flight mark"
    );
    answer(first, r#"{"status": 422}"#);
    turn().await;

    // The refusal was definitive: the retry rotates the key, and that key must be stored before any
    // request carries it (else a tab killed in between retries under yet another key).
    let before = outbox.transactions_committed();
    let _ = outbox.retry(id);
    let _ = outbox.drain();
    turn().await;
    let second = &log(&held)[1];
    assert!(
        get(second, "committed").as_f64().unwrap() > before,
        "the retry's request left before its new key was committed"
    );
    let key = |entry: &JsValue| {
        let ops: Array = get(entry, "batch.ops").unchecked_into();
        get(&ops.get(0), "idempotencyKey").as_string().unwrap()
    };
    assert_ne!(key(first), key(second));
    answer(second, r#"{"status": 200, "headers": {"ETag": "\"1\""}}"#);
    turn().await;
    assert_eq!(
        get(&outbox.status().unwrap(), "pending").as_f64(),
        Some(0.0)
    );
}

#[wasm_bindgen_test]
async fn after_another_tab_upgrades_the_database_nothing_more_is_sent() {
    let name = fresh_name("dead-storage");
    let (outbox, held) = open_held(&name, r#"{"autoDrain": false}"#).await;
    settle(outbox.enqueue(put("a", "1"))).await.unwrap();
    settle(outbox.enqueue(put("a", "2"))).await.unwrap();
    let _ = outbox.drain();
    turn().await;
    assert_eq!(log(&held).len(), 1, "one op of the lane in flight");

    // Another tab opens a newer schema: this connection steps aside and can store nothing more.
    let request = web_sys::window()
        .unwrap()
        .indexed_db()
        .unwrap()
        .unwrap()
        .open_with_u32(&name, 99)
        .unwrap();
    let opened = Promise::new(&mut |resolve, _| request.set_onsuccess(Some(&resolve)));
    settle(opened).await.unwrap();

    // The first op's ack arrives. Its delete cannot be stored, so the next op of the lane must not go:
    // a request would leave while nothing it changes is durable.
    answer(
        &log(&held)[0],
        r#"{"status": 200, "headers": {"ETag": "\"1\""}}"#,
    );
    turn().await;
    turn().await;
    assert_eq!(log(&held).len(), 1, "nothing is sent while storage is gone");
    let status = outbox.status().unwrap();
    assert_eq!(get(&status, "state").as_string().as_deref(), Some("error"));
    assert_eq!(
        get(&status, "lastError.code").as_string().as_deref(),
        Some("DB_UPGRADE_BLOCKED")
    );
    request
        .result()
        .unwrap()
        .unchecked_into::<web_sys::IdbDatabase>()
        .close();
}

#[wasm_bindgen_test]
async fn idempotency_keys_are_bytes_from_crypto_get_random_values() {
    let spy = spy_random_values();
    let (outbox, _held) = open_held(&fresh_name("entropy"), r#"{"autoDrain": false}"#).await;
    let mut keys = Vec::new();
    for i in 0..40 {
        let queued = settle(outbox.enqueue(put(&format!("k{i}"), "1")))
            .await
            .unwrap();
        keys.push(get(&queued, "idempotencyKey").as_string().unwrap());
    }
    let f: js_sys::Function = get(&spy, "hex").unchecked_into();
    let hex = f.call0(&spy).unwrap().as_string().unwrap();
    let _ = call(&spy, "restore", &JsValue::UNDEFINED);
    for key in keys {
        // The random parts of a v4 UUID: everything but the version nibble and the variant bits.
        let bytes = key.replace('-', "");
        let (head, tail) = (&bytes[..12], &bytes[20..]);
        assert!(
            hex.contains(head) && hex.contains(tail),
            "key {key} was not drawn from crypto.getRandomValues"
        );
    }
}

#[wasm_bindgen_test]
async fn the_body_resent_after_a_reload_is_byte_identical_to_the_first() {
    let name = fresh_name("body");
    let fetch = mock_fetch(&json(
        r#"["throw", {"status": 200, "headers": {"ETag": "\"1\""}}]"#,
    ));
    let options = json(
        r#"{"endpoint": "/api", "autoDrain": false, "retry": {"baseMs": 60000, "capMs": 60000}}"#,
    );
    set(&options, "name", &name.clone().into());
    let outbox = open(&options).await;
    // Doubles of every magnitude: many used to change by an ULP on each pass through storage.
    let values: Vec<String> = (0..200)
        .map(|_| {
            let bits = ((js_sys::Math::random() * 4_294_967_296.0) as u64) << 32
                | (js_sys::Math::random() * 4_294_967_296.0) as u64;
            let x = f64::from_bits(bits);
            format!("{:e}", if x.is_finite() { x } else { 1.5 })
        })
        .collect();
    let value = format!("[{}]", values.join(","));
    let queued = settle(outbox.enqueue(put("a", &value))).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    settle(outbox.close()).await.unwrap();

    // Reloaded: the op comes back from IndexedDB and is retried with the same key.
    let outbox = open(&options).await;
    let id = get(&queued, "id").as_string().unwrap();
    settle(outbox.retry(id)).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    let calls = get(&fetch, "calls").unchecked_into::<Array>();
    assert_eq!(calls.length(), 2);
    let body = |i| get(&calls.get(i), "body").as_string().unwrap();
    let key = |i| {
        get(&calls.get(i), "headers.idempotency-key")
            .as_string()
            .unwrap()
    };
    assert_eq!(key(0), key(1));
    assert_eq!(
        body(0),
        body(1),
        "one key, two bodies: the server answers 422"
    );
    let _ = call(&fetch, "restore", &JsValue::UNDEFINED);
}

#[wasm_bindgen_test]
async fn a_failed_commit_rejects_its_enqueue_stalls_sending_and_keeps_the_other_writes() {
    let (outbox, held) = open_held(&fresh_name("failed-commit"), r#"{"autoDrain": false}"#).await;
    settle(outbox.enqueue(put("a", "1"))).await.unwrap();
    // The next commit fails: the enqueue in it is rejected, and its change rolled back.
    outbox.fail_commits(1);
    let error = settle(outbox.enqueue(put("b", "2")))
        .await
        .expect_err("the commit failed");
    assert_eq!(
        get(&error, "code").as_string().as_deref(),
        Some("STORAGE_FAILED")
    );
    assert!(
        outbox.get("notes", "b").unwrap().is_undefined(),
        "rolled back"
    );
    let status = outbox.status().unwrap();
    assert_eq!(
        get(&status, "state").as_string().as_deref(),
        Some("stalled")
    );
    assert_eq!(
        get(&status, "storageError.code").as_string().as_deref(),
        Some("STORAGE_FAILED")
    );
    // Nothing goes out while storage fails: the in-flight mark of `a` could not be stored.
    outbox.fail_commits(3);
    let _ = outbox.drain();
    settle(sleep(100)).await.unwrap();
    assert_eq!(log(&held).len(), 0, "nothing sent while storage fails");
    // The retries with backoff land once storage works again; then the held send leaves.
    settle(sleep(1_500)).await.unwrap();
    let _ = outbox.drain();
    turn().await;
    assert_eq!(log(&held).len(), 1);
    let status = outbox.status().unwrap();
    assert_eq!(
        get(&status, "state").as_string().as_deref(),
        Some("syncing")
    );
    answer(
        &log(&held)[0],
        r#"{"status": 200, "headers": {"ETag": "\"1\""}}"#,
    );
    turn().await;
    let status = outbox.status().unwrap();
    assert_eq!(get(&status, "state").as_string().as_deref(), Some("idle"));
    assert_eq!(get(&status, "pending").as_f64(), Some(0.0));
}

/// The stored values of one object store of `name`, each parsed from its JSON text.
async fn stored(name: &str, store: &str) -> Vec<JsValue> {
    let dump = settle(dump_database(name))
        .await
        .unwrap()
        .as_string()
        .unwrap();
    let values: Array = get(&json(&dump), store).unchecked_into();
    values
        .iter()
        .filter_map(|v| v.as_string())
        .filter_map(|text| js_sys::JSON::parse(&text).ok())
        .collect()
}

#[wasm_bindgen_test]
async fn a_push_left_in_flight_is_read_back_through_its_one_mark_and_resent_under_its_keys() {
    let name = fresh_name("mark");
    let options = r#"{"autoDrain": false, "maxBatchOps": 5}"#;
    let (outbox, held) = open_held(&name, options).await;
    for key in ["a", "b", "c"] {
        settle(outbox.enqueue(put(key, "1"))).await.unwrap();
    }
    let _ = outbox.drain();
    turn().await;
    let keys = |entry: &JsValue| -> Vec<String> {
        let ops: Array = get(entry, "batch.ops").unchecked_into();
        ops.iter()
            .map(|op| get(&op, "idempotencyKey").as_string().unwrap())
            .collect()
    };
    let first = keys(&log(&held)[0]);
    assert_eq!(first.len(), 3, "one push of three ops");
    // In flight: one mark in the meta store (`[[id, attempt, horizon], …]`, the only array there), the
    // three records as they were enqueued.
    let marks = |meta: &[JsValue]| meta.iter().filter(|v| Array::is_array(v)).count();
    assert_eq!(marks(&stored(&name, "meta").await), 1);
    let states: Vec<String> = stored(&name, "ops")
        .await
        .iter()
        .map(|r| get(r, "state").as_string().unwrap())
        .collect();
    assert_eq!(states, ["pending"; 3], "no op record is rewritten at send");

    // The tab goes away with the push unanswered. The next one reads the ops through the mark: the
    // server may have applied them, so they go again under the same keys.
    settle(outbox.close()).await.unwrap();
    let (outbox, held) = open_held(&name, options).await;
    let _ = outbox.drain();
    turn().await;
    assert_eq!(keys(&log(&held)[0]), first);
    // The records now say so themselves (the mark was folded into them in the first commit), and the
    // one mark is the resend's: attempt 2.
    for record in stored(&name, "ops").await {
        assert_eq!(get(&record, "maybe_applied").as_bool(), Some(true));
        assert_eq!(get(&record, "attempts").as_f64(), Some(1.0));
    }
    let meta = stored(&name, "meta").await;
    assert_eq!(marks(&meta), 1);
    let marked: Array = meta
        .iter()
        .find(|v| Array::is_array(v))
        .unwrap()
        .clone()
        .unchecked_into();
    assert_eq!(marked.length(), 3);
    assert!(marked
        .iter()
        .all(|m| m.unchecked_into::<Array>().get(1).as_f64() == Some(2.0)));
    answer(
        &log(&held)[0],
        r#"{"status": 200, "headers": {"ETag": "\"1\""}}"#,
    );
    turn().await;
    assert_eq!(
        get(&outbox.status().unwrap(), "pending").as_f64(),
        Some(0.0)
    );
    assert_eq!(marks(&stored(&name, "meta").await), 0);
    assert!(stored(&name, "ops").await.is_empty());
}
