//! Moving values across the JS boundary.
//!
//! Values cross as JSON text: one `JSON.parse` / `JSON.stringify` per value instead of one boundary
//! crossing per field, which is both faster and keeps the wasm smaller than a field-by-field serializer.
//! The app's payloads and documents stay that text ([`Json`]): never parsed into a tree on the way in,
//! never re-encoded on the way out.

use outbox_core::Json;
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
    text_to_js(&value.to_string())
}

/// A payload or document as a JS value.
pub fn json_to_js(json: &Json) -> JsValue {
    text_to_js(json.text())
}

/// A JSON text as a JS value.
pub fn text_to_js(text: &str) -> JsValue {
    // The text is JSON that serde_json wrote or checked, so parsing it cannot fail.
    js_sys::JSON::parse(text).unwrap_or(JsValue::NULL)
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

/// An app's value as JSON text, exactly as given: refused (naming the path from `root`) unless it is plain
/// JSON, at most `MAX_PAYLOAD_DEPTH` deep and `max_bytes` long.
pub fn exact_from_js(value: &JsValue, root: &str, max_bytes: usize) -> Result<Json, NotJson> {
    let depth = outbox_core::MAX_PAYLOAD_DEPTH as u32;
    // The root's name is put in front here, only for a refusal: passing it in would cost a string
    // crossing on every enqueue.
    if let Some(why) = not_exact_json(value, depth) {
        return Err(NotJson::Inexact(format!("{root}{why}")));
    }
    json_from_js(value, max_bytes)
}

/// A JS value as JSON text, with its size checked against `max_bytes`.
pub fn json_from_js(value: &JsValue, max_bytes: usize) -> Result<Json, NotJson> {
    // `JSON.stringify` writes valid JSON; the check costs a scan, never a tree, and keeps the promise
    // that a stored payload always reads back.
    Json::from_text(text_from_js(value, max_bytes)?)
        .map_err(|e| NotJson::Unserializable(e.to_string()))
}

/// A JS value as a parsed JSON tree, with its size checked against `max_bytes` before it is parsed.
pub fn from_js(value: &JsValue, max_bytes: usize) -> Result<Value, NotJson> {
    serde_json::from_str(&text_from_js(value, max_bytes)?)
        .map_err(|e| NotJson::Unserializable(e.to_string()))
}

fn text_from_js(value: &JsValue, max_bytes: usize) -> Result<String, NotJson> {
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
    Ok(text)
}

/// The `message` of a JS error, or the value itself when it is a string.
pub fn message(error: &JsValue) -> String {
    js_sys::Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}

/// Writes one JSON object member by member: for the shapes that carry the app's [`Json`] text as it is
/// (a push body, `list()`), which a serializer would copy through code of its own for each shape.
pub struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens an object at the end of `out`.
    pub fn open(out: &'a mut String) -> Self {
        out.push('{');
        ObjectWriter { out, first: true }
    }

    /// A member whose value is JSON text already. `name` is written as it is: a plain ASCII name.
    pub fn json(&mut self, name: &str, json: &str) -> &mut Self {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(name);
        self.out.push_str("\":");
        self.out.push_str(json);
        self
    }

    /// A member whose value is a parsed JSON value.
    pub fn value(&mut self, name: &str, value: &Value) -> &mut Self {
        self.json(name, &value.to_string())
    }

    /// A member whose value is a string, escaped as JSON.
    pub fn string(&mut self, name: &str, text: &str) -> &mut Self {
        // Writing a string cannot fail.
        self.json(name, &serde_json::to_string(text).unwrap_or_default())
    }

    /// Closes the object.
    pub fn close(&mut self) {
        self.out.push('}');
    }
}
