//! Moving values across the JS boundary.
//!
//! Values cross as JSON text: one `JSON.parse` / `JSON.stringify` per value instead of one boundary
//! crossing per field, which is both faster and keeps the wasm smaller than a field-by-field serializer.

use serde_json::Value;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/js/exact-json.js")]
extern "C" {
    /// Why a value is not exact JSON (`src/js/exact-json.js`), starting with its path below the value,
    /// or `null`.
    #[wasm_bindgen(js_name = notExactJson)]
    fn not_exact_json(value: &JsValue, max_depth: u32) -> Option<String>;
}

/// A Rust JSON value as a JS value.
pub fn to_js(value: &Value) -> JsValue {
    // Parsing JSON that serde_json just produced cannot fail.
    js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}

/// Why a JS value is not JSON.
pub enum NotJson {
    /// It would not survive JSON exactly (a `Date`, `NaN`, a function member …): the sentence names where.
    Inexact(String),
    /// `JSON.stringify` threw (a cycle, a BigInt) or gave nothing (a function, a symbol, `undefined`).
    Unserializable(String),
    /// Its JSON text is longer than the limit.
    TooLarge(usize),
}

/// An app's value as JSON, exactly as given: refused (naming the path from `root`) unless it is plain JSON,
/// at most `MAX_PAYLOAD_DEPTH` deep and `max_bytes` long.
pub fn exact_from_js(value: &JsValue, root: &str, max_bytes: usize) -> Result<Value, NotJson> {
    let depth = outbox_core::MAX_PAYLOAD_DEPTH as u32;
    // The root's name is put in front here, only for a refusal: passing it in would cost a string
    // crossing on every enqueue.
    if let Some(why) = not_exact_json(value, depth) {
        return Err(NotJson::Inexact(format!("{root}{why}")));
    }
    from_js(value, max_bytes)
}

/// A JS value as JSON, with its size checked against `max_bytes` before it is parsed.
pub fn from_js(value: &JsValue, max_bytes: usize) -> Result<Value, NotJson> {
    let text = match js_sys::JSON::stringify(value) {
        Ok(text) => text,
        Err(e) => return Err(NotJson::Unserializable(message(&e))),
    };
    // stringify returns undefined (not a string) for functions, symbols and undefined.
    let Some(text) = text.as_string() else {
        return Err(NotJson::Unserializable(
            "it is a function, a symbol or undefined".to_owned(),
        ));
    };
    if text.len() > max_bytes {
        return Err(NotJson::TooLarge(text.len()));
    }
    serde_json::from_str(&text).map_err(|e| NotJson::Unserializable(e.to_string()))
}

/// The `message` of a JS error, or the value itself when it is a string.
pub fn message(error: &JsValue) -> String {
    js_sys::Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}
