//! Browser tests for the optimistic view: reads, watchers, rollback, rebase, pull, ingest, custom
//! mutations, and the view across a reopen. Real IndexedDB in headless Chromium; scripted transports
//! and pull sources (tests/support/harness.js).
#![cfg(target_arch = "wasm32")]

use js_sys::Array;
use outbox_sync::Outbox;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

fn stringify(value: &JsValue) -> String {
    if value.is_undefined() {
        return "undefined".into();
    }
    js_sys::JSON::stringify(value).unwrap().as_string().unwrap()
}

fn options(name: &str, script: &str, extra: &str) -> JsValue {
    let options = json(extra);
    set(&options, "name", &name.into());
    set(
        &options,
        "transport",
        &get(&scripted_transport(&json(script)), "transport"),
    );
    options
}

fn op(key: &str, kind: &str, value: &str) -> JsValue {
    let op = json(&format!(
        r#"{{"collection":"notes","key":"{key}","op":"{kind}"}}"#
    ));
    if kind != "delete" {
        set(&op, "value", &json(value));
    }
    op
}

#[wasm_bindgen_test]
async fn an_enqueue_is_readable_in_the_same_call() {
    let outbox = open(&options(
        &fresh_name("sync"),
        "{}",
        r#"{"autoDrain": false}"#,
    ))
    .await;
    let (calls, watcher) = recorder();
    outbox
        .watch_doc("notes".into(), "a".into(), watcher)
        .unwrap();
    let durable = outbox.enqueue(op("a", "put", r#"{"title":"x"}"#));
    // Not awaited yet: the view and the watcher already reflect it.
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        r#"{"title":"x"}"#
    );
    assert_eq!(
        calls.length(),
        2,
        "once at registration, once for the enqueue"
    );
    assert!(
        calls.get(0).is_undefined(),
        "registered before the document existed"
    );
    settle(durable).await.unwrap();
    let _durable = outbox.enqueue(op("a", "patch", r#"{"done":true,"title":null}"#));
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        r#"{"done":true}"#
    );
    let list = outbox.list("notes").unwrap();
    assert_eq!(get(&list, "length").as_f64(), Some(1.0));
    assert_eq!(get(&list, "0.pending").as_f64(), Some(2.0));
    assert_eq!(calls.length(), 3, "watchers fire once per change");
}

#[wasm_bindgen_test]
async fn a_refused_op_is_rolled_back_and_watchers_hear_it() {
    let script = r#"{"a": [{"status": 201, "headers": {"ETag": "\"1\""}, "body": {"title": "v1"}},
                           {"status": 422, "body": {"title": "Unprocessable"}}]}"#;
    let outbox = open(&options(
        &fresh_name("rollback"),
        script,
        r#"{"autoDrain": false}"#,
    ))
    .await;
    settle(outbox.enqueue(op("a", "put", r#"{"title":"v1"}"#)))
        .await
        .unwrap();
    settle(outbox.drain()).await.unwrap();
    let (calls, watcher) = recorder();
    outbox.watch("notes".into(), watcher).unwrap();
    settle(outbox.enqueue(op("a", "put", r#"{"title":"bad"}"#)))
        .await
        .unwrap();
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        r#"{"title":"bad"}"#
    );
    settle(outbox.drain()).await.unwrap();
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        r#"{"title":"v1"}"#,
        "back to the confirmed document"
    );
    assert_eq!(
        calls.length(),
        3,
        "one call at registration, one for the enqueue, one for the rollback"
    );
    assert_eq!(get(&calls.get(2), "0.pending").as_f64(), Some(0.0));
}

#[wasm_bindgen_test]
async fn a_pull_rebases_pending_ops_and_pages_through_tombstones() {
    let pages = json(
        r#"[
        [{"collection":"notes","key":"a","version":2,"doc":{"body":"server 2"}},
         {"collection":"notes","key":"b","version":1,"doc":{"body":"b"}}],
        [{"collection":"notes","key":"b","version":2,"deleted":true},
         {"collection":"notes","key":"c","version":1,"doc":{"body":"c"}}]
    ]"#,
    );
    let paged = paged_source(&pages);
    let name = fresh_name("pull");
    let opts = options(&name, "{}", r#"{"autoDrain": false}"#);
    let pull = json("{}");
    set(&pull, "source", &get(&paged, "source"));
    set(&opts, "pull", &pull);
    let outbox = open(&opts).await;
    // A pending local edit on "a", made against version 1.
    settle(outbox.ingest(
        "notes".into(),
        json(r#"[{"key":"a","version":1,"value":{"body":"v1"}}]"#),
    ))
    .await
    .unwrap();
    settle(outbox.enqueue(op("a", "patch", r#"{"mine":true}"#)))
        .await
        .unwrap();

    let (calls, watcher) = recorder();
    outbox.watch("notes".into(), watcher).unwrap();
    let report = settle(outbox.pull()).await.unwrap();
    assert_eq!(get(&report, "changes").as_f64(), Some(4.0));
    assert_eq!(get(&report, "cursor").as_string().as_deref(), Some("2"));
    assert_eq!(
        calls.length(),
        3,
        "one watcher call at registration, then one per page"
    );
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        r#"{"body":"server 2","mine":true}"#,
        "the pending patch replays on top of the newer server version"
    );
    assert!(
        outbox.get("notes", "b").unwrap().is_undefined(),
        "a tombstone deletes"
    );
    let keys: Vec<String> = outbox
        .list("notes")
        .unwrap()
        .unchecked_into::<Array>()
        .iter()
        .map(|i| get(&i, "key").as_string().unwrap())
        .collect();
    assert_eq!(keys, ["a", "c"]);
    let seen: Array = get(&paged, "seen").unchecked_into();
    assert_eq!(stringify(&seen), r#"[null,"1"]"#);

    // The cursor and the view survive a reopen; the next pull starts where the last ended.
    settle(outbox.close()).await.unwrap();
    let reopened = open(&opts).await;
    assert_eq!(
        stringify(&reopened.get("notes", "a").unwrap()),
        r#"{"body":"server 2","mine":true}"#
    );
    assert_eq!(
        stringify(&reopened.get("notes", "c").unwrap()),
        r#"{"body":"c"}"#
    );
    settle(reopened.pull()).await.unwrap();
    assert_eq!(stringify(&seen), r#"[null,"1","2"]"#);
}

#[wasm_bindgen_test]
async fn an_older_version_from_a_pull_changes_nothing() {
    let outbox = open(&options(
        &fresh_name("older"),
        "{}",
        r#"{"autoDrain": false}"#,
    ))
    .await;
    settle(outbox.ingest(
        "notes".into(),
        json(r#"[{"key":"a","version":"5","value":{"v":5}}]"#),
    ))
    .await
    .unwrap();
    let (calls, watcher) = recorder();
    outbox
        .watch_doc("notes".into(), "a".into(), watcher)
        .unwrap();
    settle(outbox.ingest(
        "notes".into(),
        json(r#"[{"key":"a","version":4,"value":{"v":4}}]"#),
    ))
    .await
    .unwrap();
    assert_eq!(stringify(&outbox.get("notes", "a").unwrap()), r#"{"v":5}"#);
    assert_eq!(calls.length(), 1, "only the call at registration");
    assert_eq!(stringify(&calls.get(0)), r#"{"v":5}"#);
    let error = settle(outbox.ingest("notes".into(), json(r#"[{"key":"a","value":1}]"#)))
        .await
        .expect_err("a version is required");
    assert_eq!(
        get(&error, "code").as_string().as_deref(),
        Some("INVALID_OP")
    );
}

#[wasm_bindgen_test]
async fn custom_ops_show_through_registered_mutations() {
    let outbox = open(&options(
        &fresh_name("custom"),
        "{}",
        r#"{"autoDrain": false}"#,
    ))
    .await;
    settle(outbox.ingest(
        "notes".into(),
        json(r#"[{"key":"a","version":1,"value":{"likes":1}}]"#),
    ))
    .await
    .unwrap();
    let like =
        json(r#"{"collection":"notes","key":"a","op":"custom","name":"like","value":{"by":2}}"#);
    settle(outbox.enqueue(like)).await.unwrap();
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        r#"{"likes":1}"#,
        "no mutation registered: no change"
    );
    let apply = js_sys::Function::new_with_args("doc, v", "return { likes: doc.likes + v.by };");
    outbox.register_mutation("like".into(), apply).unwrap();
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        r#"{"likes":3}"#
    );
}

#[wasm_bindgen_test]
async fn a_periodic_pull_runs_on_its_interval() {
    let paged = paged_source(&json(
        r#"[[{"collection":"notes","key":"a","version":1,"doc":{"n":1}}]]"#,
    ));
    let opts = options(&fresh_name("interval"), "{}", r#"{"autoDrain": false}"#);
    // The floor: polling faster than once a second is refused.
    set(&opts, "pull", &json(r#"{"intervalMs": 20}"#));
    let refused = settle(Outbox::open(opts.clone())).await.unwrap_err();
    assert_eq!(
        get(&refused, "code").as_string().as_deref(),
        Some("INVALID_CONFIG")
    );
    let pull = json(r#"{"intervalMs": 1000}"#);
    set(&pull, "source", &get(&paged, "source"));
    set(&opts, "pull", &pull);
    let outbox = open(&opts).await;
    settle(sleep(2_300)).await.unwrap();
    let seen: Array = get(&paged, "seen").unchecked_into();
    assert!(
        seen.length() >= 2,
        "pulled {} times in 2.3 s",
        seen.length()
    );
    assert_eq!(stringify(&outbox.get("notes", "a").unwrap()), r#"{"n":1}"#);
    settle(outbox.close()).await.unwrap();
    let after_close = seen.length();
    settle(sleep(1_100)).await.unwrap();
    assert_eq!(seen.length(), after_close, "close() stops the timer");
}
