//! Browser tests for the fetch transport: the exact requests it makes and how it reads what comes back.
//! The global `fetch` is replaced by a scripted one (tests/support/harness.js), so every request can be
//! inspected and every kind of answer — a 401, a stall, a malformed body — produced on demand. The real
//! reference server is exercised by the end-to-end tests.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Promise};
use outbox_sync::Outbox;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

fn stringify(value: &JsValue) -> String {
    js_sys::JSON::stringify(value).unwrap().as_string().unwrap()
}

fn text(value: &JsValue, path: &str) -> Option<String> {
    get(value, path).as_string()
}

/// A scripted fetch, restored when dropped so tests cannot leak it into each other.
struct MockFetch {
    mock: JsValue,
}

impl MockFetch {
    fn new(script: &str) -> Self {
        Self {
            mock: mock_fetch(&json(script)),
        }
    }

    fn calls(&self) -> Vec<JsValue> {
        get(&self.mock, "calls").unchecked_into::<Array>().to_vec()
    }
}

impl Drop for MockFetch {
    fn drop(&mut self) {
        let restore: js_sys::Function = get(&self.mock, "restore").unchecked_into();
        let _ = restore.call0(&JsValue::NULL);
    }
}

async fn open_json(options: &str) -> Outbox {
    let options = json(options);
    let name = format!("outbox-fetch-{}", js_sys::Math::random().to_bits());
    set(&options, "name", &name.into());
    open(&options).await
}

fn op(json_text: &str) -> JsValue {
    json(json_text)
}

fn of_type(events: &Array, kind: &str) -> Vec<JsValue> {
    events
        .iter()
        .filter(|e| text(e, "type").as_deref() == Some(kind))
        .collect()
}

const OK: &str = r#"{"status": 200, "headers": {"ETag": "\"4\"", "Content-Type": "application/json"}, "body": "{\"title\":\"server\"}"}"#;

#[wasm_bindgen_test]
async fn requests_follow_the_protocol() {
    let fetch = MockFetch::new(&format!("[{OK}]"));
    let outbox = open_json(r#"{"endpoint": "https://api.example/v1/", "autoDrain": false, "clientId": "c-7", "credentials": "include"}"#,
    )
    .await;
    let events = record_events(&outbox);
    let put = settle(outbox.enqueue(op(
        r#"{"collection":"notes","key":"a/b c","op":"put","value":{"title":"x"}}"#,
    )))
    .await
    .unwrap();
    settle(outbox.enqueue(op(
        r#"{"collection":"notes","key":"p","op":"patch","value":{"done":true},"baseVersion":"3"}"#,
    )))
    .await
    .unwrap();
    settle(outbox.enqueue(op(
        r#"{"collection":"notes","key":"d","op":"delete","baseVersion":"5"}"#,
    )))
    .await
    .unwrap();
    // Versions are opaque in the API; an ETag's quotes are the transport's business.
    let quoted = settle(outbox.enqueue(op(
        r#"{"collection":"notes","key":"q","op":"delete","baseVersion":"\"5\""}"#,
    )))
    .await
    .unwrap_err();
    assert_eq!(text(&quoted, "code").as_deref(), Some("INVALID_OP"));
    settle(outbox.drain()).await.unwrap();

    let calls = fetch.calls();
    assert_eq!(calls.len(), 3);
    let by_method = |m: &str| {
        calls
            .iter()
            .find(|c| text(c, "method").as_deref() == Some(m))
            .cloned()
            .unwrap()
    };

    let put_call = by_method("PUT");
    // The key is one path segment, percent-encoded; the trailing slash of the endpoint is not doubled.
    assert_eq!(
        text(&put_call, "url").as_deref(),
        Some("https://api.example/v1/docs/notes/a%2Fb%20c")
    );
    let key = text(&put, "idempotencyKey").unwrap();
    // A structured-field string: the UUID in double quotes.
    assert_eq!(
        text(&put_call, "headers.idempotency-key"),
        Some(format!("\"{key}\""))
    );
    assert_eq!(
        text(&put_call, "headers.content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        text(&put_call, "headers.outbox-client-id").as_deref(),
        Some("c-7")
    );
    assert_eq!(
        get(&put_call, "headers.if-match"),
        JsValue::UNDEFINED,
        "no base version, no If-Match"
    );
    assert_eq!(text(&put_call, "body").as_deref(), Some(r#"{"title":"x"}"#));
    assert_eq!(text(&put_call, "credentials").as_deref(), Some("include"));

    let patch_call = by_method("PATCH");
    assert_eq!(
        text(&patch_call, "headers.content-type").as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        text(&patch_call, "headers.if-match").as_deref(),
        Some("\"3\"")
    );

    let delete_call = by_method("DELETE");
    assert_eq!(
        get(&delete_call, "body"),
        JsValue::NULL,
        "a DELETE has no body"
    );
    assert_eq!(
        get(&delete_call, "headers.content-type"),
        JsValue::UNDEFINED
    );
    assert_eq!(
        text(&delete_call, "headers.if-match").as_deref(),
        Some("\"5\""),
        "the version is quoted into an entity-tag"
    );

    // The ETag and the returned document reach the app.
    let acked = of_type(&events, "acked");
    assert_eq!(acked.len(), 3);
    assert!(acked
        .iter()
        .all(|e| text(e, "version").as_deref() == Some("4")));
    let put_id = text(&put, "id").unwrap();
    let put_ack = acked
        .iter()
        .find(|e| text(e, "id").as_deref() == Some(put_id.as_str()))
        .unwrap();
    assert_eq!(text(put_ack, "doc.title").as_deref(), Some("server"));
    // The server's document is now what the app reads.
    assert_eq!(
        text(&outbox.get("notes", "a/b c").unwrap(), "title").as_deref(),
        Some("server")
    );
}

#[wasm_bindgen_test]
async fn auth_runs_at_send_time_and_again_after_a_401() {
    let fetch = MockFetch::new(&format!(r#"[{{"status": 401}}, {OK}]"#));
    let options = json(r#"{"endpoint": "/api", "autoDrain": false}"#);
    set(
        &options,
        "name",
        &format!("outbox-auth-{}", js_sys::Math::random().to_bits()).into(),
    );
    let refreshes = Array::new();
    let seen = refreshes.clone();
    let auth = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |request: JsValue| {
        let refresh = get(&request, "refresh").as_bool().unwrap();
        seen.push(&refresh.into());
        // An async callback, as apps write them.
        Promise::resolve(&json(&format!(
            r#"{{"Authorization": "Bearer {}"}}"#,
            if refresh { "fresh" } else { "stale" }
        )))
        .into()
    });
    set(&options, "auth", auth.as_ref());
    let outbox = open(&options).await;
    settle(outbox.enqueue(op(
        r#"{"collection":"notes","key":"a","op":"put","value":1}"#,
    )))
    .await
    .unwrap();
    settle(outbox.drain()).await.unwrap();
    settle(sleep(20)).await.unwrap();
    settle(outbox.drain()).await.unwrap();

    let calls = fetch.calls();
    assert_eq!(calls.len(), 2, "a 401 is retried once, at once");
    assert_eq!(
        text(&calls[0], "headers.authorization").as_deref(),
        Some("Bearer stale")
    );
    assert_eq!(
        text(&calls[1], "headers.authorization").as_deref(),
        Some("Bearer fresh")
    );
    assert_eq!(
        refreshes
            .iter()
            .map(|r| r.as_bool().unwrap())
            .collect::<Vec<_>>(),
        [false, true],
        "the callback is asked for fresh credentials after the 401"
    );
    assert_eq!(
        get(&outbox.status().unwrap(), "pending").as_f64(),
        Some(0.0)
    );
    drop(auth);
}

#[wasm_bindgen_test]
async fn a_stalled_request_times_out_and_is_retried_with_the_same_key() {
    let fetch = MockFetch::new(&format!(r#"["hang", {OK}]"#));
    let outbox = open_json(r#"{"endpoint": "/api", "autoDrain": false, "timeoutMs": 50, "retry": {"baseMs": 1, "capMs": 2, "floorMs": 1}}"#).await;
    let events = record_events(&outbox);
    settle(outbox.enqueue(op(
        r#"{"collection":"notes","key":"a","op":"put","value":1}"#,
    )))
    .await
    .unwrap();
    settle(outbox.drain()).await.unwrap();
    settle(sleep(30)).await.unwrap();
    settle(outbox.drain()).await.unwrap();

    let retry = of_type(&events, "retry_scheduled");
    assert_eq!(retry.len(), 1);
    assert_eq!(
        text(&retry[0], "error.message").as_deref(),
        Some("timed out after 50 ms")
    );
    let calls = fetch.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        text(&calls[0], "headers.idempotency-key"),
        text(&calls[1], "headers.idempotency-key"),
        "the retry of a request that may have been applied reuses its key"
    );
    assert_eq!(of_type(&events, "acked").len(), 1);
}

#[wasm_bindgen_test]
async fn malformed_bodies_become_outcomes_not_panics() {
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    let script = json("[]").unchecked_into::<Array>();
    // 1. A 2xx with the version but broken JSON: the write happened, so it is an ack, just without
    //    the server's copy. (Without an ETag as well it would not be a protocol answer: see
    //    tests/e2e/hostile_server.test.mjs.)
    script.push(&json(
        r#"{"status": 200, "headers": {"Content-Type": "application/json", "ETag": "\"7\""}, "body": "{not json"}"#,
    ));
    // 2. A 400 whose body nests deeper than the parser allows: still a permanent failure, by status.
    let nested =
        json(r#"{"status": 400, "headers": {"Content-Type": "application/problem+json"}}"#);
    set(&nested, "body", &deep.into());
    script.push(&nested);
    // 3. A 200 announcing a 100 MB body: not read at all.
    script.push(&json(
        r#"{"status": 200, "headers": {"Content-Type": "application/json", "ETag": "\"8\"", "Content-Length": "104857600"}, "body": "{}"}"#,
    ));
    let mock = MockFetch {
        mock: mock_fetch(&script),
    };
    let outbox = open_json(r#"{"endpoint": "/api", "autoDrain": false, "maxInFlight": 1}"#).await;
    let events = record_events(&outbox);
    for key in ["a", "b", "c"] {
        settle(outbox.enqueue(op(&format!(
            r#"{{"collection":"notes","key":"{key}","op":"put","value":1}}"#
        ))))
        .await
        .unwrap();
    }
    settle(outbox.drain()).await.unwrap();
    assert_eq!(mock.calls().len(), 3);
    let acked = of_type(&events, "acked");
    assert_eq!(acked.len(), 2);
    // No usable document came back, so the confirmed state is the op applied locally (the value sent).
    assert!(acked.iter().all(|e| get(e, "doc").as_f64() == Some(1.0)));
    let failed = of_type(&events, "failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(get(&failed[0], "error.status").as_f64(), Some(400.0));
    // Still working afterwards.
    assert_eq!(
        text(&outbox.status().unwrap(), "state").as_deref(),
        Some("error")
    );
}

#[wasm_bindgen_test]
async fn push_results_are_matched_to_their_ops() {
    // The push reply is built from the request: ack the first op, conflict the second, omit the third.
    let outbox_name = format!("outbox-push-{}", js_sys::Math::random().to_bits());
    let original = get(&js_sys::global(), "fetch");
    let requests = Array::new();
    let seen = requests.clone();
    let responder = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |request: JsValue| {
        seen.push(&request);
        let request: web_sys::Request = request.unchecked_into();
        let body = request.text().unwrap();
        wasm_bindgen_futures::future_to_promise(async move {
            let body = JsFuture::from(body).await?;
            let ops: Array =
                get(&js_sys::JSON::parse(&body.as_string().unwrap())?, "ops").unchecked_into();
            let id = |i: u32| text(&ops.get(i), "id").unwrap();
            let reply = format!(
                r#"{{"results": [
                  {{"id": "{}", "status": 201, "etag": "\"1\"", "doc": {{"n": 1, "b": 2, "a": 3}}}},
                  {{"id": "{}", "status": 412, "problem": {{"type": "https://outbox-sync.dev/problems/version-conflict",
                    "title": "Version conflict", "current": {{"n": 9}}}}}}
                ]}}"#,
                id(0),
                id(1)
            );
            let init = web_sys::ResponseInit::new();
            init.set_status(200);
            let headers = web_sys::Headers::new()?;
            headers.set("Content-Type", "application/json")?;
            init.set_headers(&headers);
            Ok(web_sys::Response::new_with_opt_str_and_init(Some(&reply), &init)?.into())
        })
    });
    set(&js_sys::global(), "fetch", responder.as_ref());
    let options = json(
        r#"{"endpoint": "/api", "batch": true, "autoDrain": false, "retry": {"baseMs": 60000, "capMs": 60000}}"#,
    );
    set(&options, "name", &outbox_name.into());
    let outbox = open(&options).await;
    let events = record_events(&outbox);
    for key in ["a", "b", "c"] {
        settle(outbox.enqueue(op(&format!(
            r#"{{"collection":"notes","key":"{key}","op":"put","value":1}}"#
        ))))
        .await
        .unwrap();
    }
    settle(outbox.drain()).await.unwrap();
    set(&js_sys::global(), "fetch", &original);

    assert_eq!(requests.length(), 1, "one push for the three ops");
    let request: web_sys::Request = requests.get(0).unchecked_into();
    assert_eq!(request.method(), "POST");
    assert!(request.url().ends_with("/api/push"));
    assert_eq!(of_type(&events, "acked").len(), 1);
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        r#"{"n":1,"b":2,"a":3}"#,
        "the acknowledged document, as the server wrote it"
    );
    let conflict = of_type(&events, "conflict");
    assert_eq!(conflict.len(), 1);
    assert_eq!(get(&conflict[0], "error.status").as_f64(), Some(412.0));
    let retried = of_type(&events, "retry_scheduled");
    assert_eq!(
        retried.len(),
        1,
        "an op missing from the results is retried, not lost"
    );
    drop(responder);
}

#[wasm_bindgen_test]
async fn the_client_id_made_for_an_outbox_is_kept_across_a_reload() {
    let fetch = MockFetch::new(&format!("[{OK}]"));
    let options = json(r#"{"endpoint": "/api", "autoDrain": false}"#);
    set(&options, "name", &fresh_name("client-id").into());
    let mut ids = Vec::new();
    for key in ["a", "b"] {
        let outbox = open(&options).await;
        let value = format!(r#"{{"collection":"notes","key":"{key}","op":"put","value":{{}}}}"#);
        settle(outbox.enqueue(op(&value))).await.unwrap();
        settle(outbox.drain()).await.unwrap();
        settle(outbox.close()).await.unwrap();
        let calls = fetch.calls();
        ids.push(text(calls.last().unwrap(), "headers.outbox-client-id").unwrap());
    }
    assert_eq!(fetch.calls().len(), 2);
    // The scope of every key it sent: a reload that made a new one could resend a key the server
    // would not recognise as the same client's.
    assert!(!ids[0].is_empty());
    assert_eq!(ids[0], ids[1]);
}

#[wasm_bindgen_test]
async fn a_value_keeps_the_apps_json_text_in_the_view_the_store_and_on_the_wire() {
    // Keys out of alphabetical order and numbers as JavaScript spells them: a parse into a tree and a
    // re-encode would sort the keys (and could respell the numbers), so a reload or a resend would not
    // show or send what the app gave.
    let given = json(r#"{"z":1,"a":{"y":2.5,"b":[1e21,0.1,-7]},"m":"\u00e9"}"#);
    let spelled = stringify(&given);
    assert_eq!(
        spelled,
        r#"{"z":1,"a":{"y":2.5,"b":[1e+21,0.1,-7]},"m":"é"}"#
    );
    let options = json(r#"{"endpoint": "https://api.example", "autoDrain": false}"#);
    let name = format!("outbox-text-{}", js_sys::Math::random().to_bits());
    set(&options, "name", &name.into());
    let put = |key: &str| {
        let op = json(&format!(
            r#"{{"collection":"notes","key":"{key}","op":"put"}}"#
        ));
        set(&op, "value", &given);
        op
    };
    let outbox = open(&options).await;
    settle(outbox.enqueue(put("a"))).await.unwrap();
    settle(outbox.enqueue(put("b"))).await.unwrap();
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        spelled,
        "get()"
    );
    let listed = outbox.list("notes").unwrap();
    assert_eq!(stringify(&get(&listed, "0.value")), spelled, "list()");
    let pending = settle(outbox.pending()).await.unwrap();
    assert_eq!(stringify(&get(&pending, "0.value")), spelled, "pending()");
    settle(outbox.close()).await.unwrap();

    // Read back from IndexedDB by a new instance, then sent.
    let outbox = open(&options).await;
    assert_eq!(
        stringify(&outbox.get("notes", "b").unwrap()),
        spelled,
        "after a reload"
    );
    let fetch = MockFetch::new(r#"[{"status": 200, "headers": {"ETag": "\"1\""}}]"#);
    settle(outbox.drain()).await.unwrap();
    let bodies: Vec<String> = fetch
        .calls()
        .iter()
        .filter_map(|c| text(c, "body"))
        .collect();
    assert_eq!(
        bodies,
        vec![spelled.clone(), spelled],
        "each PUT body, byte for byte"
    );
    settle(outbox.close()).await.unwrap();
}

#[wasm_bindgen_test]
async fn the_servers_document_keeps_its_text_in_the_view_and_after_a_reload() {
    // Keys out of alphabetical order: a parse into a tree and a re-encode would sort them, so the
    // document the app sees would change its shape at the ack, and again differ from the server's.
    let fetch = MockFetch::new(
        r#"[{"status": 200, "headers": {"ETag": "\"2\"", "Content-Type": "application/json"},
             "body": "{\"z\":1,\"a\":{\"y\":[3,1]},\"m\":\"s\"}"}]"#,
    );
    let options = json(r#"{"endpoint": "https://api.example", "autoDrain": false}"#);
    set(&options, "name", &fresh_name("server-text").into());
    let outbox = open(&options).await;
    settle(outbox.enqueue(op(
        r#"{"collection":"notes","key":"a","op":"put","value":{"m":"c"}}"#,
    )))
    .await
    .unwrap();
    settle(outbox.drain()).await.unwrap();
    assert_eq!(fetch.calls().len(), 1);
    let server = r#"{"z":1,"a":{"y":[3,1]},"m":"s"}"#;
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        server,
        "get()"
    );
    settle(outbox.close()).await.unwrap();
    let outbox = open(&options).await;
    assert_eq!(
        stringify(&outbox.get("notes", "a").unwrap()),
        server,
        "after a reload, from the stored confirmed document"
    );
    settle(outbox.close()).await.unwrap();
}
