//! Helpers shared by the browser test suites (`tests/browser_*.rs`), and the bindings to
//! `tests/support/harness.js`, where the things that are plain in JS and verbose in Rust live.

// Each suite uses its own subset.
#![allow(dead_code)]

use js_sys::{Array, Promise, Reflect};
use outbox_sync::Outbox;
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/tests/support/harness.js")]
extern "C" {
    /// A custom transport answering from a script; `{ transport, log }`.
    #[wasm_bindgen(js_name = scriptedTransport)]
    pub fn scripted_transport(script: &JsValue) -> JsValue;
    /// Every record of every store of a database, as JSON text.
    #[wasm_bindgen(js_name = dumpDatabase)]
    pub fn dump_database(name: &str) -> Promise;
    /// Replaces the global fetch with a scripted one; `{ calls, restore }`.
    #[wasm_bindgen(js_name = mockFetch)]
    pub fn mock_fetch(script: &JsValue) -> JsValue;
    /// A pull source serving pages in order; `{ source, seen }`.
    #[wasm_bindgen(js_name = pagedSource)]
    pub fn paged_source(pages: &JsValue) -> JsValue;
    /// Resolves after `ms`.
    pub fn sleep(ms: u32) -> Promise;
}

/// A database name no other test uses.
pub fn fresh_name(test: &str) -> String {
    format!("outbox-test-{test}-{}", js_sys::Math::random().to_bits())
}

/// A JS value from JSON text.
pub fn json(text: &str) -> JsValue {
    js_sys::JSON::parse(text).expect("test JSON")
}

/// `value.a.b.c` for the path `"a.b.c"`; `undefined` where it stops.
pub fn get(value: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(value.clone(), |v, field| {
        Reflect::get(&v, &field.into()).unwrap_or(JsValue::UNDEFINED)
    })
}

/// `object[field] = value`.
pub fn set(object: &JsValue, field: &str, value: &JsValue) {
    Reflect::set(object, &field.into(), value).expect("set");
}

/// Awaits a promise.
pub async fn settle(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

/// Opens an outbox and takes the Rust value out of its JS wrapper: the suites drive it from Rust.
pub async fn open(options: &JsValue) -> Outbox {
    let js = settle(Outbox::open(options.clone()))
        .await
        .expect("Outbox.open");
    Outbox::try_from_js_value(js).expect("an Outbox")
}

/// A JS callback that records every argument it is called with.
pub fn recorder() -> (Array, js_sys::Function) {
    let calls = Array::new();
    let sink = calls.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
        sink.push(&v);
    });
    (calls, f.into_js_value().unchecked_into())
}

/// Every event the outbox emits, in order.
pub fn record_events(outbox: &Outbox) -> Array {
    let (events, listener) = recorder();
    outbox.on("*".into(), listener).expect("on('*')");
    events
}
