//! Browser tests for pausing and resuming pulls per collection: a paused collection's changes are held
//! back while the shared cursor moves on, and all of them arrive on resume and after a reload. Real
//! IndexedDB in headless Chromium; a change log as `pull.source` (tests/support/change_log.js), and the
//! mock fetch.
#![cfg(target_arch = "wasm32")]

use js_sys::Array;
use outbox_sync::Outbox;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

// In the shared harness module: a test binary with a second snippet module hung at load now and then.
#[wasm_bindgen(module = "/tests/support/harness.js")]
extern "C" {
    #[wasm_bindgen(js_name = changeLog)]
    fn change_log(ignore_filter: bool) -> JsValue;
}

struct Log(JsValue);

impl Log {
    fn new(ignore_filter: bool) -> Log {
        Log(change_log(ignore_filter))
    }

    fn write(&self, collection: &str, key: &str, version: u32) {
        let write: js_sys::Function = get(&self.0, "write").unchecked_into();
        let doc = json(&format!(r#"{{"v":{version}}}"#));
        let args = Array::of4(&collection.into(), &key.into(), &version.into(), &doc);
        write.apply(&JsValue::NULL, &args).unwrap();
    }

    /// The calls so far, as `cursor:collections` (`*` for every collection).
    fn calls(&self) -> Vec<String> {
        get(&self.0, "calls")
            .unchecked_into::<Array>()
            .iter()
            .map(|call| {
                let cursor = get(&call, "cursor").as_string().unwrap_or("null".into());
                let collections = get(&call, "collections");
                let collections = if collections.is_null() {
                    "*".to_owned()
                } else {
                    collections
                        .unchecked_into::<Array>()
                        .join(",")
                        .as_string()
                        .unwrap()
                };
                format!("{cursor}:{collections}")
            })
            .collect()
    }

    fn options(&self, name: &str, pull: &str) -> JsValue {
        let options = json(r#"{"autoDrain": false}"#);
        set(&options, "name", &name.into());
        set(
            &options,
            "transport",
            &get(&scripted_transport(&json("{}")), "transport"),
        );
        let pull = json(pull);
        set(&pull, "source", &get(&self.0, "source"));
        set(&options, "pull", &pull);
        options
    }
}

/// The version of a document in the view, 0 when it is absent.
fn version(outbox: &Outbox, collection: &str, key: &str) -> u32 {
    let doc = outbox.get(collection, key).unwrap();
    get(&doc, "v").as_f64().map_or(0, |v| v as u32)
}

fn paused(outbox: &Outbox) -> String {
    js_sys::JSON::stringify(&outbox.pull_paused().unwrap())
        .unwrap()
        .as_string()
        .unwrap()
}

#[wasm_bindgen_test]
async fn a_paused_collection_is_held_back_and_all_of_it_arrives_on_resume() {
    let log = Log::new(false);
    log.write("notes", "a", 1);
    log.write("todos", "t", 1);
    let outbox = open(&log.options(&fresh_name("pause"), "{}")).await;
    settle(outbox.pull()).await.unwrap();
    assert_eq!(version(&outbox, "notes", "a"), 1);

    outbox.pause_pull(Some("notes".into())).unwrap();
    assert_eq!(paused(&outbox), r#"["notes"]"#);
    log.write("notes", "a", 2);
    log.write("todos", "t", 2);
    log.write("notes", "b", 1);
    log.write("notes", "c", 1);
    log.write("todos", "u", 1);
    let report = settle(outbox.pull()).await.unwrap();
    assert_eq!(
        get(&report, "changes").as_f64(),
        Some(2.0),
        "only todos apply"
    );
    assert_eq!(version(&outbox, "todos", "t"), 2);
    assert_eq!(version(&outbox, "todos", "u"), 1);
    assert_eq!(version(&outbox, "notes", "a"), 1, "held back");
    assert_eq!(version(&outbox, "notes", "b"), 0, "held back");

    let report = settle(outbox.resume_pull(Some("notes".into())))
        .await
        .unwrap();
    assert_eq!(get(&report, "changes").as_f64(), Some(3.0));
    assert_eq!(paused(&outbox), "[]");
    assert_eq!(version(&outbox, "notes", "a"), 2);
    assert_eq!(version(&outbox, "notes", "b"), 1);
    assert_eq!(version(&outbox, "notes", "c"), 1);
    assert_eq!(
        log.calls(),
        [
            "null:*", "2:*", "4:*", "6:*", "7:*",
            // The catch-up: notes alone, from where it was paused, in pages.
            "2:notes", "5:notes"
        ]
    );

    // Nothing is owed any more: the next pull is the shared one alone, and applies notes again.
    log.write("notes", "a", 3);
    settle(outbox.pull()).await.unwrap();
    assert_eq!(version(&outbox, "notes", "a"), 3);
    assert_eq!(log.calls().last().unwrap(), "7:*");

    // No argument: no pull at all (the cursor stays, so there is nothing to catch up).
    outbox.pause_pull(None).unwrap();
    assert_eq!(paused(&outbox), r#""all""#);
    log.write("todos", "t", 3);
    let calls = log.calls().len();
    let report = settle(outbox.pull()).await.unwrap();
    assert_eq!(
        get(&report, "skipped").as_string().as_deref(),
        Some("pullPaused")
    );
    assert_eq!(
        log.calls().len(),
        calls,
        "no request while everything is paused"
    );
    settle(outbox.resume_pull(None)).await.unwrap();
    assert_eq!(version(&outbox, "todos", "t"), 3);
}

#[wasm_bindgen_test]
async fn a_reload_while_paused_loses_nothing() {
    // A source that ignores the filter: the runtime still applies only what it asked for.
    let log = Log::new(true);
    log.write("notes", "a", 1);
    let name = fresh_name("pause-reload");
    let options = log.options(&name, "{}");
    let outbox = open(&options).await;
    settle(outbox.pull()).await.unwrap();
    outbox.pause_pull(Some("notes".into())).unwrap();
    log.write("notes", "a", 2);
    log.write("todos", "t", 1);
    log.write("notes", "b", 1);
    settle(outbox.pull()).await.unwrap();
    assert_eq!(version(&outbox, "todos", "t"), 1);
    assert_eq!(version(&outbox, "notes", "b"), 0);
    settle(outbox.close()).await.unwrap();

    // The shared cursor moved past notes' changes; the stored catch-up cursor brings them back.
    let reopened = open(&options).await;
    assert_eq!(paused(&reopened), "[]", "the pause itself is not stored");
    assert_eq!(version(&reopened, "notes", "a"), 1);
    let report = settle(reopened.pull()).await.unwrap();
    assert_eq!(get(&report, "changes").as_f64(), Some(2.0));
    assert_eq!(version(&reopened, "notes", "a"), 2);
    assert_eq!(version(&reopened, "notes", "b"), 1);
    assert_eq!(version(&reopened, "todos", "t"), 1);
    assert_eq!(log.calls()[3..], ["4:*", "1:notes", "3:notes"]);

    // Caught up for good: a second reload owes nothing.
    settle(reopened.close()).await.unwrap();
    let again = open(&options).await;
    settle(again.pull()).await.unwrap();
    assert_eq!(log.calls().last().unwrap(), "4:*");
}

#[wasm_bindgen_test]
async fn pull_collections_limits_what_is_pulled_and_asks_the_server_to_filter() {
    let log = Log::new(true);
    log.write("notes", "a", 1);
    log.write("todos", "t", 1);
    let outbox =
        open(&log.options(&fresh_name("pull-only"), r#"{"collections": ["todos"]}"#)).await;
    settle(outbox.pull()).await.unwrap();
    assert_eq!(version(&outbox, "todos", "t"), 1);
    assert_eq!(version(&outbox, "notes", "a"), 0);
    assert_eq!(log.calls(), ["null:todos"]);

    let bad = json(r#"{"name": "x", "endpoint": "/api", "pull": {"collections": []}}"#);
    let error = settle(Outbox::open(bad)).await.unwrap_err();
    assert_eq!(
        get(&error, "code").as_string().as_deref(),
        Some("INVALID_CONFIG")
    );
}

#[wasm_bindgen_test]
async fn the_fetch_transport_sends_the_filter_as_repeated_collection_parameters() {
    let page = r#"{"status": 200, "headers": {"content-type": "application/json"},
        "body": "{\"changes\": [], \"cursor\": \"0\", \"hasMore\": false}"}"#;
    let mock = mock_fetch(&json(&format!("[{page}]")));
    let options = json(
        r#"{"endpoint": "/api", "autoDrain": false, "pull": {"collections": ["todos", "a b"]}}"#,
    );
    set(&options, "name", &fresh_name("pull-fetch").into());
    let outbox = open(&options).await;
    settle(outbox.pull()).await.unwrap();
    let calls: Array = get(&mock, "calls").unchecked_into();
    let restore: js_sys::Function = get(&mock, "restore").unchecked_into();
    restore.call0(&JsValue::NULL).unwrap();
    let url = get(&calls.get(0), "url").as_string().unwrap();
    assert!(
        url.ends_with("/api/pull?limit=100&collection=todos&collection=a%20b"),
        "{url}"
    );
}
