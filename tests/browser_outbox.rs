//! Browser tests for the `Outbox` JS API, in headless Chromium with real IndexedDB. Each test uses a fresh
//! database name. Transports are scripted in JS (tests/support/harness.js) so every outcome class can be
//! produced on demand.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Promise};
use outbox_sync::Outbox;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Options with a scripted transport; returns them with the transport's call log.
fn scripted_options(name: &str, script: &str, extra: &str) -> (JsValue, Array) {
    let scripted = scripted_transport(&json(script));
    let options = json(extra);
    set(&options, "name", &name.into());
    set(&options, "transport", &get(&scripted, "transport"));
    let log: Array = get(&scripted, "log").unchecked_into();
    (options, log)
}

/// The `code` of a rejection, after checking it is a real `Error` named `SyncError`.
fn sync_error_code(error: &JsValue) -> String {
    assert!(
        error.is_instance_of::<js_sys::Error>(),
        "errors are Error objects: {error:?}"
    );
    assert_eq!(get(error, "name").as_string().as_deref(), Some("SyncError"));
    get(error, "code").as_string().expect("a code")
}

fn op(collection: &str, key: &str, value: &str) -> JsValue {
    let op = json(&format!(
        r#"{{"collection":"{collection}","key":"{key}","op":"put"}}"#
    ));
    set(&op, "value", &json(value));
    op
}

async fn list(promise: Promise) -> Vec<JsValue> {
    settle(promise)
        .await
        .expect("a list")
        .unchecked_into::<Array>()
        .to_vec()
}

fn keys_of(ops: &[JsValue]) -> Vec<String> {
    ops.iter()
        .map(|o| get(o, "key").as_string().unwrap())
        .collect()
}

fn event_types(events: &Array) -> Vec<String> {
    events
        .iter()
        .map(|e| get(&e, "type").as_string().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Durability

#[wasm_bindgen_test]
async fn ops_survive_close_and_reopen_with_the_same_idempotency_keys() {
    let name = fresh_name("reload");
    let (options, log) = scripted_options(&name, "{}", r#"{"autoDrain": false}"#);
    let outbox = open(&options).await;
    let mut enqueued = Vec::new();
    for i in 0..3 {
        let result = settle(outbox.enqueue(op("notes", &format!("n{i}"), r#"{"title":"hi"}"#)))
            .await
            .expect("enqueue");
        enqueued.push((
            get(&result, "id").as_string().unwrap(),
            get(&result, "idempotencyKey").as_string().unwrap(),
        ));
    }
    settle(outbox.close()).await.unwrap();
    assert_eq!(log.length(), 0, "autoDrain: false sends nothing");

    // The reload: a new instance on the same database.
    let reopened = open(&options).await;
    let pending = list(reopened.pending()).await;
    let restored: Vec<(String, String)> = pending
        .iter()
        .map(|o| {
            (
                get(o, "id").as_string().unwrap(),
                get(o, "idempotencyKey").as_string().unwrap(),
            )
        })
        .collect();
    assert_eq!(restored, enqueued);
    assert_eq!(
        get(&reopened.status().unwrap(), "pending").as_f64(),
        Some(3.0)
    );
}

#[wasm_bindgen_test]
async fn a_thousand_enqueues_in_one_task_share_one_transaction() {
    let (options, _) = scripted_options(&fresh_name("burst"), "{}", r#"{"autoDrain": false}"#);
    let outbox = open(&options).await;
    let before = outbox.transactions_committed();
    let promises: Vec<Promise> = (0..1000)
        .map(|i| outbox.enqueue(op("notes", &format!("k{i}"), "1")))
        .collect();
    for p in promises {
        settle(p).await.expect("every enqueue resolves");
    }
    assert_eq!(outbox.transactions_committed() - before, 1.0);
    assert_eq!(list(outbox.pending()).await.len(), 1000);
}

// ---------------------------------------------------------------------------------------------
// Draining through every outcome class

const SCRIPT: &str = r#"{
  "ok":       [{"status": 200, "headers": {"ETag": "\"7\""}, "body": {"title": "server copy"}}],
  "flaky":    [{"status": 503}, {"status": 200}],
  "dropped":  ["throw", {"status": 201}],
  "conflict": [{"status": 412, "body": {"type": "https://outbox-sync.dev/problems/version-conflict",
                 "title": "Version mismatch", "current": {"title": "theirs"}}},
               {"status": 200}],
  "bad":      [{"status": 400, "body": {"type": "https://outbox-sync.dev/problems/invalid-request",
                 "title": "Bad title"}},
               {"status": 200}]
}"#;

#[wasm_bindgen_test]
async fn each_outcome_class_moves_the_op_to_the_right_state() {
    let (options, log) = scripted_options(
        &fresh_name("outcomes"),
        SCRIPT,
        // One op per batch, so the scripted "throw" fails only its own op.
        // Conflicts held for the app (the default, server-wins, would drop the op).
        r#"{"autoDrain": false, "maxBatchOps": 1, "maxInFlight": 8, "retry": {"baseMs": 1, "capMs": 2, "floorMs": 1},
            "collections": {"notes": {"conflict": "manual"}}}"#,
    );
    let outbox = open(&options).await;
    let events = record_events(&outbox);
    for key in ["ok", "flaky", "dropped", "conflict", "bad"] {
        settle(outbox.enqueue(op("notes", key, r#"{"title":"mine"}"#)))
            .await
            .unwrap();
    }
    // A second op on the conflicting entity: it must wait behind the first.
    settle(outbox.enqueue(op("notes", "conflict", r#"{"title":"mine, again"}"#)))
        .await
        .unwrap();

    let first = settle(outbox.drain()).await.unwrap();
    // Exact: each transient op fails once, one op is refused, one conflicts. The retries themselves may
    // land in this drain or the next (full jitter can make a backoff zero), so acks are counted overall.
    assert_eq!(
        get(&first, "retried").as_f64(),
        Some(2.0),
        "flaky and dropped back off"
    );
    assert_eq!(
        get(&first, "failed").as_f64(),
        Some(1.0),
        "bad is dead-lettered"
    );
    assert_eq!(get(&first, "conflicts").as_f64(), Some(1.0));

    let failed = list(outbox.failed()).await;
    assert_eq!(keys_of(&failed), ["bad"]);
    assert_eq!(get(&failed[0], "lastError.status").as_f64(), Some(400.0));
    assert_eq!(
        get(&failed[0], "state").as_string().as_deref(),
        Some("failed")
    );
    let conflicts = list(outbox.conflicts()).await;
    assert_eq!(keys_of(&conflicts), ["conflict"]);
    let status = outbox.status().unwrap();
    assert_eq!(get(&status, "failed").as_f64(), Some(1.0));
    assert_eq!(get(&status, "conflicts").as_f64(), Some(1.0));

    // The halted lane holds its second op back; the other lanes retry and finish.
    settle(sleep(20)).await.unwrap();
    let second = settle(outbox.drain()).await.unwrap();
    let acked = get(&first, "acked").as_f64().unwrap() + get(&second, "acked").as_f64().unwrap();
    assert_eq!(acked, 3.0, "ok, and flaky and dropped on retry");

    // The retry after a lost response reuses the idempotency key: that is what lets the server apply the
    // op once.
    let keys_sent_for_dropped: Vec<String> = log
        .iter()
        .map(|call| get(&call, "batch.ops").unchecked_into::<Array>().get(0))
        .filter(|op| get(op, "key").as_string().as_deref() == Some("dropped"))
        .map(|op| get(&op, "idempotencyKey").as_string().unwrap())
        .collect();
    assert_eq!(keys_sent_for_dropped.len(), 2);
    assert_eq!(keys_sent_for_dropped[0], keys_sent_for_dropped[1]);
    let pending = list(outbox.pending()).await;
    assert_eq!(
        keys_of(&pending),
        ["conflict"],
        "the op behind the conflict still waits"
    );
    let sent_conflict = log
        .iter()
        .filter(|call| {
            get(call, "keys")
                .unchecked_into::<Array>()
                .includes(&"conflict".into(), 0)
        })
        .count();
    assert_eq!(sent_conflict, 1, "a halted lane sends nothing more");

    // Discarding the conflicted op releases its lane; retrying the failed op sends it again.
    let conflict_id = get(&conflicts[0], "id").as_string().unwrap();
    settle(outbox.discard(conflict_id.clone())).await.unwrap();
    settle(outbox.retry(get(&failed[0], "id").as_string().unwrap()))
        .await
        .unwrap();
    let report = settle(outbox.drain()).await.unwrap();
    assert_eq!(get(&report, "remaining").as_f64(), Some(0.0));
    assert!(list(outbox.failed()).await.is_empty());
    assert!(list(outbox.conflicts()).await.is_empty());
    let sends_of = |key: &str| {
        log.iter()
            .filter(|call| {
                get(call, "keys")
                    .unchecked_into::<Array>()
                    .includes(&key.into(), 0)
            })
            .count()
    };
    assert_eq!(sends_of("bad"), 2, "the retried op was sent again");
    assert_eq!(
        sends_of("conflict"),
        2,
        "the op behind the discarded one was sent"
    );
    assert_eq!(
        get(&outbox.status().unwrap(), "state")
            .as_string()
            .as_deref(),
        Some("idle")
    );

    let types = event_types(&events);
    for expected in [
        "enqueued",
        "sent",
        "acked",
        "retry_scheduled",
        "failed",
        "conflict",
        "discarded",
        "drained",
        "status_changed",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "missing {expected} in {types:?}"
        );
    }
    // The discard error path: a discarded op is gone.
    let error = settle(outbox.discard(conflict_id))
        .await
        .expect_err("already discarded");
    assert_eq!(sync_error_code(&error), "UNKNOWN_OP");
}

#[wasm_bindgen_test]
async fn a_429_blocks_every_send_until_retry_after() {
    let script = r#"{"a": [{"status": 429, "headers": {"Retry-After": "1"}}, {"status": 200}]}"#;
    let (options, log) = scripted_options(&fresh_name("429"), script, r#"{"autoDrain": false}"#);
    let outbox = open(&options).await;
    settle(outbox.enqueue(op("notes", "a", "1"))).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    let status = outbox.status().unwrap();
    assert_eq!(
        get(&status, "state").as_string().as_deref(),
        Some("blocked")
    );
    let first_call = get(&log.get(0), "at").as_f64().unwrap();
    let blocked_until = get(&status, "blockedUntil")
        .as_f64()
        .expect("blockedUntil is set");
    assert!(
        blocked_until >= first_call + 900.0,
        "blocked for about Retry-After"
    );

    // Another entity is blocked too: a 429 is about the endpoint, not the op.
    settle(outbox.enqueue(op("notes", "b", "2"))).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    assert_eq!(log.length(), 1, "nothing is sent while blocked");

    // The engine's own wake-up sends both once the block ends.
    settle(sleep(1300)).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    assert_eq!(
        get(&outbox.status().unwrap(), "pending").as_f64(),
        Some(0.0)
    );
    let second_call = get(&log.get(1), "at").as_f64().unwrap();
    assert!(
        second_call - first_call >= 1000.0,
        "never sooner than Retry-After"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[wasm_bindgen_test]
async fn invalid_ops_are_refused_with_invalid_op_and_change_nothing() {
    let (options, _) = scripted_options(
        &fresh_name("bad-op"),
        "{}",
        r#"{"autoDrain": false, "maxOpBytes": 64}"#,
    );
    let outbox = open(&options).await;
    let cyclic = json("{}");
    set(&cyclic, "self", &cyclic);
    let function = JsValue::from(js_sys::Function::new_no_args("return 1"));
    let cases: Vec<(JsValue, &str)> = vec![
        (
            json(r#"{"collection":"notes","op":"put","value":1}"#),
            "op.key",
        ),
        (
            json(r#"{"collection":"","key":"a","op":"put","value":1}"#),
            "op.collection",
        ),
        (
            json(r#"{"collection":"notes","key":"a","op":"upsert","value":1}"#),
            "op.op",
        ),
        (
            json(r#"{"collection":"notes","key":"a","op":"put"}"#),
            "op.value",
        ),
        (
            json(r#"{"collection":"notes","key":"a","op":"custom","value":1}"#),
            "op.name",
        ),
        (
            op("notes", "a", &format!("\"{}\"", "x".repeat(100))),
            "maxOpBytes",
        ),
        (JsValue::from_str("put notes/a"), "object"),
        (
            {
                let o = op("notes", "a", "1");
                set(&o, "value", &cyclic);
                o
            },
            "op.value",
        ),
        (
            {
                let o = op("notes", "a", "1");
                set(&o, "value", &function);
                o
            },
            "op.value",
        ),
        (
            {
                let o = op("notes", "a", "1");
                set(&o, "value", &js_sys::BigInt::from(1u32).into());
                o
            },
            "op.value",
        ),
    ];
    for (input, field) in cases {
        let error = settle(outbox.enqueue(input.clone()))
            .await
            .expect_err("refused");
        assert_eq!(sync_error_code(&error), "INVALID_OP", "{input:?}");
        let message = get(&error, "message").as_string().unwrap();
        assert!(message.contains(field), "{message:?} should name {field}");
    }
    assert!(
        list(outbox.pending()).await.is_empty(),
        "nothing was queued"
    );
    assert_eq!(outbox.transactions_committed(), 0.0, "nothing was written");
}

#[wasm_bindgen_test]
async fn invalid_options_are_refused_with_invalid_config() {
    let transport = get(&scripted_transport(&json("{}")), "transport");
    let with_transport = |extra: &str| {
        let o = json(extra);
        set(&o, "transport", &transport);
        o
    };
    let cases: Vec<(JsValue, &str)> = vec![
        (json("null"), "options"),
        (with_transport("{}"), "options.name"),
        (json(r#"{"name":"x"}"#), "options.endpoint"),
        (
            with_transport(r#"{"name":"x","endpoint":"/api"}"#),
            "exclusive",
        ),
        (
            with_transport(r#"{"name":"x","durability":"fast"}"#),
            "options.durability",
        ),
        (
            with_transport(r#"{"name":"x","retry":{"baseMs":100,"capMs":10}}"#),
            "options.retry.capMs",
        ),
        (
            with_transport(r#"{"name":"x","retry":{"baseMs":-1}}"#),
            "options.retry.baseMs",
        ),
        (
            json(r#"{"name":"x","endpoint":"/api","timeoutMs":0}"#),
            "options.timeoutMs",
        ),
        (
            json(r#"{"name":"x","endpoint":"/api","credentials":"always"}"#),
            "options.credentials",
        ),
        (
            json(r#"{"name":"x","endpoint":"/api","auth":"Bearer x"}"#),
            "options.auth",
        ),
        (
            with_transport(r#"{"name":"x","autoDrain":"yes"}"#),
            "options.autoDrain",
        ),
    ];
    for (options, field) in cases {
        let error = settle(Outbox::open(options.clone()))
            .await
            .expect_err("refused");
        assert_eq!(sync_error_code(&error), "INVALID_CONFIG", "{options:?}");
        let message = get(&error, "message").as_string().unwrap();
        assert!(message.contains(field), "{message:?} should name {field}");
    }
}

#[wasm_bindgen_test]
async fn a_closed_outbox_refuses_calls() {
    let (options, _) = scripted_options(&fresh_name("closed"), "{}", r#"{"autoDrain": false}"#);
    let outbox = open(&options).await;
    settle(outbox.close()).await.unwrap();
    let error = settle(outbox.enqueue(op("notes", "a", "1")))
        .await
        .expect_err("closed");
    assert_eq!(sync_error_code(&error), "CLOSED");
    let error = outbox.status().expect_err("closed");
    assert_eq!(sync_error_code(&error.into()), "CLOSED");
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[wasm_bindgen_test]
async fn the_auth_token_never_reaches_indexeddb() {
    const SECRET: &str = "Bearer SECRET-TOKEN-5f2a";
    let name = fresh_name("auth");
    let options = json(r#"{"autoDrain": false, "retry": {"baseMs": 1, "capMs": 2, "floorMs": 1}}"#);
    set(&options, "name", &name.clone().into());
    // Nothing listens on port 1: every send fails, so the op is persisted again after each attempt.
    set(&options, "endpoint", &"http://127.0.0.1:1/api".into());
    let calls = Array::new();
    let calls_in_auth = calls.clone();
    let auth = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |request: JsValue| {
        calls_in_auth.push(&request);
        json(&format!(r#"{{"Authorization": "{SECRET}"}}"#))
    });
    set(&options, "auth", auth.as_ref());
    let outbox = open(&options).await;
    settle(outbox.enqueue(op("notes", "a", r#"{"title":"x"}"#)))
        .await
        .unwrap();
    settle(outbox.drain()).await.unwrap();
    settle(sleep(20)).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    assert!(calls.length() >= 2, "the auth callback runs at every send");
    let pending = list(outbox.pending()).await;
    assert!(get(&pending[0], "attempts").as_f64().unwrap() >= 2.0);
    settle(outbox.close()).await.unwrap();

    let dump = settle(dump_database(&name))
        .await
        .unwrap()
        .as_string()
        .unwrap();
    assert!(
        dump.contains("idempotency_key"),
        "the dump holds the op records: {dump}"
    );
    assert!(
        !dump.contains("SECRET-TOKEN"),
        "the token leaked into IndexedDB: {dump}"
    );
    drop(auth);
}

// ---------------------------------------------------------------------------------------------
// Triggers

fn dispatch_window_event(name: &str) {
    let window = web_sys::window().expect("a window");
    let event = web_sys::Event::new(name).expect("an event");
    window.dispatch_event(&event).expect("dispatched");
}

#[wasm_bindgen_test]
async fn going_offline_holds_sends_and_coming_online_sends_at_once() {
    let (options, log) = scripted_options(&fresh_name("online"), "{}", r#"{"drainDelayMs": 0}"#);
    let outbox = open(&options).await;
    dispatch_window_event("offline");
    assert_eq!(
        get(&outbox.status().unwrap(), "state")
            .as_string()
            .as_deref(),
        Some("offline")
    );
    settle(outbox.enqueue(op("notes", "a", "1"))).await.unwrap();
    settle(sleep(30)).await.unwrap();
    assert_eq!(log.length(), 0, "nothing is sent while offline");
    assert_eq!(
        get(&outbox.status().unwrap(), "pending").as_f64(),
        Some(1.0)
    );

    dispatch_window_event("online");
    settle(sleep(30)).await.unwrap();
    assert_eq!(log.length(), 1, "coming back online sends at once");
    let status = outbox.status().unwrap();
    assert_eq!(get(&status, "state").as_string().as_deref(), Some("idle"));
    assert_eq!(get(&status, "online").as_bool(), Some(true));
}

#[wasm_bindgen_test]
async fn an_enqueue_is_sent_by_itself_shortly_after() {
    let (options, log) = scripted_options(&fresh_name("auto"), "{}", "{}");
    let outbox = open(&options).await;
    let statuses = Array::new();
    let sink = statuses.clone();
    let subscriber = Closure::<dyn FnMut(JsValue)>::new(move |s: JsValue| {
        sink.push(&s);
    });
    let unsubscribe = outbox
        .subscribe(subscriber.into_js_value().unchecked_into())
        .unwrap();
    for i in 0..5 {
        settle(outbox.enqueue(op("notes", &format!("k{i}"), "1")))
            .await
            .unwrap();
    }
    settle(sleep(50)).await.unwrap();
    assert_eq!(
        get(&outbox.status().unwrap(), "pending").as_f64(),
        Some(0.0)
    );
    assert!(log.length() >= 1, "sent without a drain() call");
    let states: Vec<String> = statuses
        .iter()
        .map(|s| get(&s, "state").as_string().unwrap())
        .collect();
    assert!(states.contains(&"syncing".to_owned()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("idle"));

    // Unsubscribed: no more calls.
    unsubscribe
        .unchecked_into::<js_sys::Function>()
        .call0(&JsValue::NULL)
        .unwrap();
    let seen = statuses.length();
    settle(outbox.enqueue(op("notes", "later", "1")))
        .await
        .unwrap();
    settle(sleep(30)).await.unwrap();
    assert_eq!(statuses.length(), seen);
}

#[wasm_bindgen_test]
async fn a_newer_schema_in_another_tab_turns_the_status_to_error_at_once() {
    let name = fresh_name("upgrade");
    let (options, _) = scripted_options(&name, "{}", r#"{"autoDrain": false}"#);
    let outbox = open(&options).await;
    let statuses = Array::new();
    let sink = statuses.clone();
    let subscriber = Closure::<dyn FnMut(JsValue)>::new(move |s: JsValue| {
        sink.push(&s);
    });
    outbox
        .subscribe(subscriber.into_js_value().unchecked_into())
        .unwrap();
    // Another tab, running a newer release, opens the database at a higher version.
    let request = web_sys::window()
        .unwrap()
        .indexed_db()
        .unwrap()
        .unwrap()
        .open_with_u32(&name, 99)
        .unwrap();
    let opened = Promise::new(&mut |resolve, _| {
        request.set_onsuccess(Some(&resolve));
    });
    settle(opened).await.unwrap();
    let status = outbox.status().unwrap();
    assert_eq!(get(&status, "state").as_string().as_deref(), Some("error"));
    assert_eq!(
        get(&status, "lastError.code").as_string().as_deref(),
        Some("DB_UPGRADE_BLOCKED")
    );
    let last = statuses.get(statuses.length() - 1);
    assert_eq!(
        get(&last, "lastError.code").as_string().as_deref(),
        Some("DB_UPGRADE_BLOCKED"),
        "subscribers hear it without any write"
    );
    let error = settle(outbox.enqueue(op("notes", "a", "1")))
        .await
        .expect_err("stepped aside");
    assert_eq!(sync_error_code(&error), "DB_UPGRADE_BLOCKED");
    request
        .result()
        .unwrap()
        .unchecked_into::<web_sys::IdbDatabase>()
        .close();
}

#[wasm_bindgen_test]
async fn opening_paused_sends_nothing_until_resume() {
    let name = fresh_name("paused");
    let (options, log) = scripted_options(&name, "{}", r#"{"autoDrain": false}"#);
    let outbox = open(&options).await;
    settle(outbox.enqueue(op("notes", "a", "1"))).await.unwrap();
    settle(outbox.close()).await.unwrap();

    // The reload of an app that was "offline": the restored queue must stay put.
    set(&options, "autoDrain", &true.into());
    set(&options, "paused", &true.into());
    let reopened = open(&options).await;
    settle(sleep(30)).await.unwrap();
    assert_eq!(log.length(), 0, "nothing sent while opened paused");
    assert_eq!(
        get(&reopened.status().unwrap(), "state")
            .as_string()
            .as_deref(),
        Some("paused")
    );
    reopened.resume().unwrap();
    settle(sleep(30)).await.unwrap();
    assert_eq!(log.length(), 1, "resume sends the restored op");
}
