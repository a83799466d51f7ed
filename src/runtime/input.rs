//! Reading input: the app's ops and op ids, and the records stored in IndexedDB.

use outbox_core::{ConfirmedDoc, Json, NewOp, OpId, OpKind, OpRecord};

use super::quarantine::Quarantined;
use wasm_bindgen::prelude::*;

use super::Runtime;
use crate::convert;
use crate::error::{Error, Result};
use crate::transport::wire;

impl Runtime {
    pub(super) fn parse_op(&self, input: &JsValue) -> Result<NewOp> {
        if !input.is_object() {
            return Err(invalid_op(
                "the op must be an object like { collection, key, op, value }",
            ));
        }
        let field = |name: &str| op_member(input, name);
        let text = |name: &str| -> Result<Option<String>> {
            let v = field(name);
            if v.is_undefined() || v.is_null() {
                return Ok(None);
            }
            let text = v
                .as_string()
                .ok_or_else(|| invalid_op(format!("op.{name} must be a string")))?;
            // `as_string` would turn a lone surrogate into U+FFFD without a word: another key. So a
            // U+FFFD in the text is either the app's own or a lone surrogate replaced; only then is the
            // JS string checked (`is_valid_utf16` crosses into JS once per UTF-16 unit).
            if text.contains('\u{FFFD}') && !v.unchecked_ref::<js_sys::JsString>().is_valid_utf16()
            {
                return Err(invalid_op(format!(
                    "op.{name} holds a lone surrogate (not valid Unicode text)"
                )));
            }
            Ok(Some(text))
        };
        let collection = text("collection")?
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid_op("op.collection is required (a non-empty string)"))?;
        let key = text("key")?
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid_op("op.key is required (a non-empty string)"))?;
        let kind = match text("op")?.as_deref() {
            Some("put") => OpKind::Put,
            Some("patch") => OpKind::Patch,
            Some("delete") => OpKind::Delete,
            Some("custom") => {
                let name = text("name")?
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| invalid_op("op.name is required for a custom op"))?;
                if !self.transport.supports_custom_ops() {
                    return Err(invalid_op(
                        "custom ops need options.route or options.transport to say where they go",
                    ));
                }
                OpKind::Custom { name }
            }
            Some(other) => {
                return Err(invalid_op(format!(
                    "op.op must be \"put\", \"patch\", \"delete\" or \"custom\", not {other:?}"
                )))
            }
            None => {
                return Err(invalid_op(
                    "op.op is required: \"put\", \"patch\", \"delete\" or \"custom\"",
                ))
            }
        };
        let value = field("value");
        let payload = if kind == OpKind::Delete {
            Json::null()
        } else if value.is_undefined() {
            return Err(invalid_op(
                "op.value is required for put, patch and custom ops",
            ));
        } else {
            convert::exact_from_js(&value, "op.value", self.max_op_bytes).map_err(|e| match e {
                convert::NotJson::Inexact(why) => invalid_op(why),
                convert::NotJson::Unserializable(why) => {
                    invalid_op(format!("op.value is not JSON-serialisable: {why}"))
                }
                convert::NotJson::TooLarge(bytes) => invalid_op(format!(
                    "op.value is {bytes} bytes of JSON; the limit (options.maxOpBytes) is {}",
                    self.max_op_bytes
                )),
            })?
        };
        // An opaque version as the API shows them (`3`, not the ETag `"3"`). It goes into an If-Match
        // header, so it must be visible ASCII, or fetch would refuse it at every send.
        let base_version = text("baseVersion")?
            .map(|version| {
                wire::etag_from_api(&version).ok_or_else(|| {
                    invalid_op(format!(
                        "op.baseVersion must be a version as the outbox reports them (visible ASCII, no quotes: 3, not \"3\"), not {version:?}"
                    ))
                })
            })
            .transpose()?;
        if self.transport.speaks_protocol() {
            check_identity(&collection, &key)?;
        }
        Ok(NewOp {
            collection,
            key,
            kind,
            payload,
            base_version,
        })
    }
}

/// The members an op is read from, in the order of the JS names cached below.
const OP_MEMBERS: [&str; 6] = ["collection", "key", "op", "name", "value", "baseVersion"];

thread_local! {
    /// `OP_MEMBERS` as JS strings, made once: a `&str` key would become a new JS string (decoded from
    /// the wasm memory) at every read, six times per enqueue.
    static OP_MEMBER_NAMES: Vec<JsValue> = OP_MEMBERS.iter().map(|m| JsValue::from_str(m)).collect();
}

/// `input[name]`, or `undefined` when reading it threw (a getter).
pub(super) fn op_member(input: &JsValue, name: &str) -> JsValue {
    let read = |key: &JsValue| js_sys::Reflect::get(input, key).unwrap_or(JsValue::UNDEFINED);
    match OP_MEMBERS.iter().position(|m| *m == name) {
        Some(i) => OP_MEMBER_NAMES.with(|names| read(&names[i])),
        None => read(&JsValue::from_str(name)),
    }
}

/// The identity rules of docs/PROTOCOL.md §2, checked at enqueue so an op the server must refuse is refused
/// at once, never queued to fail later. `.` and `..` would collapse in a URL path to another resource.
fn check_identity(collection: &str, key: &str) -> Result<()> {
    let collection_ok = collection.len() <= 64
        && collection
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if is_dot_segment(collection) {
        return Err(invalid_op(format!(
            "op.collection {collection:?} is a dot segment: a URL would resolve it to another resource"
        )));
    }
    if !collection_ok {
        return Err(invalid_op(format!(
            "op.collection must be 1-64 characters of A-Z a-z 0-9 - _ . (docs/PROTOCOL.md), not {collection:?}"
        )));
    }
    if key.len() > 256 {
        return Err(invalid_op(format!(
            "op.key is {} bytes of UTF-8; the protocol allows 256",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid_op(format!(
            "op.key must not hold control characters, as {key:?} does"
        )));
    }
    if is_dot_segment(key) {
        return Err(invalid_op(format!(
            "op.key {key:?} is a dot segment: a URL would resolve it to another resource"
        )));
    }
    Ok(())
}

/// `.` and `..` in a URL path are resolved away (RFC 3986 §5.2.4), percent-encoded or not (`%2e`), so
/// a document so named could never be addressed: the op would reach another resource.
fn is_dot_segment(segment: &str) -> bool {
    segment == "." || segment == ".."
}

fn invalid_op(message: impl Into<String>) -> Error {
    Error::InvalidOp(message.into())
}

pub(super) fn parse_id(id: &str) -> Result<OpId> {
    id.parse()
        .map_err(|_| Error::InvalidOp(format!("{id:?} is not an op id")))
}

/// The stored confirmed documents that can be read. One that cannot is left out (the next pull brings the
/// server's copy again): a damaged cache never keeps the queue from opening.
pub(super) fn decode_docs(stored: Vec<JsValue>) -> Vec<ConfirmedDoc> {
    stored
        .into_iter()
        .filter_map(|value| serde_json::from_str(&value.as_string()?).ok())
        .collect()
}

/// The stored op records, read: those that parse, and those that do not (written by a newer release, or
/// unreadable), set aside so that one bad record never keeps the rest of the queue from opening.
pub(super) fn decode_records(stored: Vec<(JsValue, JsValue)>) -> (Vec<OpRecord>, Vec<Quarantined>) {
    let mut records = Vec::with_capacity(stored.len());
    let mut quarantined = Vec::new();
    for (key, value) in stored {
        let id = key.as_string().and_then(|k| k.parse::<OpId>().ok());
        let text = value.as_string();
        match (parse_record(text.as_deref()), id) {
            (Ok(record), _) => records.push(record),
            (Err(reason), Some(id)) => quarantined.push(Quarantined {
                id,
                raw: text.unwrap_or_default(),
                reason,
            }),
            // Not even a key to name it by: no op of this outbox wrote it.
            (Err(_), None) => {}
        }
    }
    (records, quarantined)
}

/// One stored op record (`None`: the value was not a string), or why it cannot be read.
pub(super) fn parse_record(text: Option<&str>) -> std::result::Result<OpRecord, String> {
    let text = text.ok_or_else(|| "not a JSON string".to_owned())?;
    let record = serde_json::from_str::<OpRecord>(text).map_err(|e| e.to_string())?;
    if record.format_version > outbox_core::FORMAT_VERSION {
        return Err(format!(
            "written in record format {} by a newer release; this one reads {}",
            record.format_version,
            outbox_core::FORMAT_VERSION
        ));
    }
    Ok(record)
}
