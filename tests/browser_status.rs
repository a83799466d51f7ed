//! Browser tests for what the status and the events tell: a backoff reads `retrying` with the sync's
//! progress, `attempts` counts every attempt, a resolver function's answer is what the `conflict` event
//! reports, and `options.onStatus` hears a restore from before its first record. Each failed before its
//! fix.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use outbox_sync::Outbox;
use support::*;

/// Options with a scripted transport; returns them with the transport's call log.
fn scripted_options(name: &str, script: &str, extra: &str) -> (JsValue, Array) {
    let scripted = scripted_transport(&json(script));
    let options = json(extra);
    set(&options, "name", &name.into());
    set(&options, "transport", &get(&scripted, "transport"));
    (options, get(&scripted, "log").unchecked_into())
}

fn put(key: &str, value: &str) -> JsValue {
    json(&format!(
        r#"{{"collection":"notes","key":"{key}","op":"put","value":{value}}}"#
    ))
}

fn of_type(events: &Array, kind: &str) -> Vec<JsValue> {
    events
        .iter()
        .filter(|e| get(e, "type").as_string().as_deref() == Some(kind))
        .collect()
}

#[wasm_bindgen_test]
async fn a_backoff_reads_retrying_with_the_progress_of_the_sync() {
    // `a` fails once and backs off for a minute; `b` goes through.
    let (options, _log) = scripted_options(
        &fresh_name("retrying"),
        r#"{"a": [{"status": 503}, {"status": 200, "headers": {"ETag": "\"1\""}}]}"#,
        r#"{"autoDrain": false, "retry": {"baseMs": 60000, "capMs": 60000, "floorMs": 60000}}"#,
    );
    let outbox = open(&options).await;
    settle(outbox.enqueue(put("a", "1"))).await.unwrap();
    settle(outbox.enqueue(put("b", "2"))).await.unwrap();
    let status = outbox.status().unwrap();
    assert_eq!(
        get(&status, "state").as_string().as_deref(),
        Some("syncing")
    );
    assert_eq!(get(&status, "progress.current").as_f64(), Some(0.0));
    assert_eq!(get(&status, "progress.total").as_f64(), Some(2.0));

    settle(outbox.drain()).await.unwrap();
    let status = outbox.status().unwrap();
    assert_eq!(
        get(&status, "state").as_string().as_deref(),
        Some("retrying"),
        "nothing is in flight, nothing can go before the backoff ends"
    );
    assert!(get(&status, "nextAttemptAt").as_f64().is_some());
    assert_eq!(get(&status, "inFlight").as_f64(), Some(0.0));
    assert_eq!(get(&status, "progress.current").as_f64(), Some(1.0));
    assert_eq!(get(&status, "progress.total").as_f64(), Some(2.0));
    assert_eq!(get(&status, "lastError.status").as_f64(), Some(503.0));

    // The app's retry: the op goes at once, and its attempts go on counting.
    let pending = settle(outbox.pending()).await.unwrap();
    let id = get(&Array::from(&pending).get(0), "id")
        .as_string()
        .unwrap();
    settle(outbox.retry(id)).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    let status = outbox.status().unwrap();
    assert_eq!(get(&status, "state").as_string().as_deref(), Some("idle"));
    assert!(get(&status, "progress").is_null());
    assert!(get(&status, "lastError").is_null());
}

#[wasm_bindgen_test]
async fn attempts_read_two_after_a_retry_that_failed_again() {
    let (options, _log) = scripted_options(
        &fresh_name("attempts"),
        r#"{"a": [{"status": 422}]}"#,
        r#"{"autoDrain": false}"#,
    );
    let outbox = open(&options).await;
    settle(outbox.enqueue(put("a", "1"))).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    let failed = Array::from(&settle(outbox.failed()).await.unwrap());
    assert_eq!(get(&failed.get(0), "attempts").as_f64(), Some(1.0));
    let id = get(&failed.get(0), "id").as_string().unwrap();
    settle(outbox.retry(id)).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    let failed = Array::from(&settle(outbox.failed()).await.unwrap());
    assert_eq!(
        get(&failed.get(0), "attempts").as_f64(),
        Some(2.0),
        "the retry was an attempt too"
    );
}

#[wasm_bindgen_test]
async fn a_resolver_that_merged_reports_merged_once_it_answered() {
    let conflict = r#"{"status": 412, "body": {"type": "https://outbox-sync.dev/problems/version-conflict",
        "current": {"etag": "\"2\"", "deleted": false, "doc": {"title": "theirs"}}}}"#;
    let (options, log) = scripted_options(
        &fresh_name("resolver"),
        &format!(r#"{{"doc": [{conflict}, {{"status": 200, "headers": {{"ETag": "\"3\""}}}}]}}"#),
        r#"{"autoDrain": false, "collections": {"notes": {}}}"#,
    );
    // An asynchronous resolver: the event must wait for its answer.
    let resolver = Function::new_with_args(
        "local, server",
        "return new Promise((resolve) => setTimeout(() => \
             resolve({ use: 'merged', value: { ...server, ...local, merged: true } }), 20));",
    );
    set(&get(&options, "collections.notes"), "conflict", &resolver);
    let outbox = open(&options).await;
    let events = record_events(&outbox);
    settle(outbox.enqueue(put("doc", r#"{"body": "mine"}"#)))
        .await
        .unwrap();
    settle(outbox.drain()).await.unwrap();
    assert!(
        of_type(&events, "conflict").is_empty(),
        "told only once the resolver answered"
    );
    settle(sleep(100)).await.unwrap();
    settle(outbox.drain()).await.unwrap();

    let conflicts = of_type(&events, "conflict");
    assert_eq!(conflicts.len(), 1, "one conflict, told once");
    assert_eq!(
        get(&conflicts[0], "resolution").as_string().as_deref(),
        Some("merged"),
        "the resolver merged and resent: not held"
    );
    assert_eq!(
        get(&conflicts[0], "serverDoc.title").as_string().as_deref(),
        Some("theirs")
    );
    // The conflict is told before what its resolution set off: the resend and its ack.
    let types: Vec<String> = events
        .iter()
        .filter_map(|e| get(&e, "type").as_string())
        .collect();
    let at = |t: &str| types.iter().rposition(|x| x == t).unwrap();
    assert!(at("conflict") < at("acked"), "{types:?}");
    assert_eq!(log.length(), 2);
    let resent = get(&log.get(1), "batch.ops")
        .unchecked_into::<Array>()
        .get(0);
    assert_eq!(get(&resent, "value.merged").as_bool(), Some(true));
    assert_eq!(
        get(&resent, "value.title").as_string().as_deref(),
        Some("theirs")
    );
    let status = outbox.status().unwrap();
    assert_eq!(get(&status, "conflicts").as_f64(), Some(0.0));
    assert_eq!(get(&status, "state").as_string().as_deref(), Some("idle"));
}

#[wasm_bindgen_test]
async fn a_resolver_that_throws_leaves_the_conflict_held_and_says_so() {
    let conflict = r#"{"status": 412, "body": {"type": "https://outbox-sync.dev/problems/version-conflict",
        "current": {"etag": "\"2\"", "deleted": false, "doc": {"title": "theirs"}}}}"#;
    let (options, _log) = scripted_options(
        &fresh_name("resolver-throws"),
        &format!(r#"{{"doc": [{conflict}]}}"#),
        r#"{"autoDrain": false, "collections": {"notes": {}}}"#,
    );
    let resolver = Function::new_no_args("throw new Error('cannot merge')");
    set(&get(&options, "collections.notes"), "conflict", &resolver);
    // The resolver's failure is reported with `reportError`; keep it out of the test's console.
    let report = get(&js_sys::global(), "reportError");
    set(&js_sys::global(), "reportError", &Function::new_no_args(""));
    let outbox = open(&options).await;
    let events = record_events(&outbox);
    settle(outbox.enqueue(put("doc", r#"{"body": "mine"}"#)))
        .await
        .unwrap();
    settle(outbox.drain()).await.unwrap();
    settle(sleep(20)).await.unwrap();
    set(&js_sys::global(), "reportError", &report);
    let conflicts = of_type(&events, "conflict");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        get(&conflicts[0], "resolution").as_string().as_deref(),
        Some("held")
    );
    let status = outbox.status().unwrap();
    assert_eq!(get(&status, "conflicts").as_f64(), Some(1.0));
    assert_eq!(get(&status, "state").as_string().as_deref(), Some("error"));
}

/// `state` and `progress.current` of a recorded status.
fn state_and_read(status: &JsValue) -> (String, f64) {
    (
        get(status, "state").as_string().unwrap_or_default(),
        get(status, "progress.current").as_f64().unwrap_or(-1.0),
    )
}

#[wasm_bindgen_test]
async fn on_status_hears_the_restore_from_before_the_first_record_is_read() {
    let name = fresh_name("restoring");
    let (options, _log) = scripted_options(
        &name,
        r#"{"bad": [{"status": 422}]}"#,
        r#"{"autoDrain": false}"#,
    );
    let outbox = open(&options).await;
    settle(outbox.enqueue(put("bad", "0"))).await.unwrap();
    settle(outbox.drain()).await.unwrap();
    for i in 0..200 {
        settle(outbox.enqueue(put(&format!("k{i}"), "1")))
            .await
            .unwrap();
    }
    settle(outbox.close()).await.unwrap();

    // Reopened with a status subscriber from the start.
    let (statuses, on_status) = recorder();
    set(&options, "onStatus", &on_status);
    let outbox = open(&options).await;
    let heard: Vec<JsValue> = statuses.iter().collect();
    let restoring: Vec<&JsValue> = heard
        .iter()
        .filter(|s| state_and_read(s).0 == "restoring")
        .collect();
    // The first status came before any record was read: nothing counted yet, and how many there are
    // estimated from the first part of them.
    let first = &heard[0];
    assert_eq!(state_and_read(first), ("restoring".into(), 0.0));
    assert!(get(first, "progress.total").as_f64().is_some());
    assert_eq!(get(first, "pending").as_f64(), Some(0.0));
    assert_eq!(
        get(first, "role").as_string().as_deref(),
        Some("uncoordinated")
    );
    // Then as the parts were read: the counts are those of the records read so far.
    assert!(
        restoring.len() >= 3,
        "the count, then parts as they come: {} restoring statuses",
        restoring.len()
    );
    let mut read = 0.0;
    for status in &restoring {
        let now_read = state_and_read(status).1;
        assert!(now_read >= read, "records read never go back");
        read = now_read;
        let counted =
            get(status, "pending").as_f64().unwrap() + get(status, "failed").as_f64().unwrap();
        assert_eq!(
            counted, now_read,
            "the counts are those of the records read"
        );
        let total = get(status, "progress.total").as_f64().unwrap();
        assert!(
            total >= now_read,
            "never more read than there are: {now_read} of {total}"
        );
    }
    assert!(
        restoring
            .iter()
            .any(|s| (1.0..201.0).contains(&state_and_read(s).1)),
        "some status was heard halfway through the read"
    );
    assert_eq!(
        read, 201.0,
        "the last restoring status has read every record"
    );
    assert_eq!(
        get(restoring.last().unwrap(), "progress.total").as_f64(),
        Some(201.0),
        "and knows, then, how many there are"
    );
    // Then the restored status, once, before `open` resolved: every op in place.
    assert_eq!(heard.len(), restoring.len() + 1);
    let restored = heard.last().unwrap();
    assert_eq!(
        get(restored, "state").as_string().as_deref(),
        Some("syncing")
    );
    assert_eq!(get(restored, "pending").as_f64(), Some(200.0));
    assert_eq!(get(restored, "failed").as_f64(), Some(1.0));
    assert_eq!(get(restored, "lastError.status").as_f64(), Some(422.0));

    // And it goes on hearing every change, as a subscriber does.
    outbox.pause().unwrap();
    let last = statuses.get(statuses.length() - 1);
    assert_eq!(get(&last, "state").as_string().as_deref(), Some("paused"));
    settle(outbox.close()).await.unwrap();

    // A subscriber that throws breaks neither the restore nor the outbox.
    let throws: Function =
        Function::new_with_args("status", "throw new Error('app bug: ' + status.state)");
    set(&options, "onStatus", &throws);
    let outbox = open(&options).await;
    assert_eq!(
        get(&outbox.status().unwrap(), "pending").as_f64(),
        Some(200.0)
    );
    settle(outbox.close()).await.unwrap();

    // Anything but a function is refused by name.
    set(&options, "onStatus", &"yes".into());
    let refused = settle(Outbox::open(options.clone())).await.unwrap_err();
    assert_eq!(
        get(&refused, "code").as_string().as_deref(),
        Some("INVALID_CONFIG")
    );
    assert!(get(&refused, "message")
        .as_string()
        .unwrap()
        .contains("onStatus"));
}
