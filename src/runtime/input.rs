//! Reading input: the app's ops and op ids, and the records stored in IndexedDB.

use outbox_core::{ConfirmedDoc, NewOp, OpId, OpKind, OpRecord};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::Runtime;
use crate::convert;
use crate::error::{Error, Result};

impl Runtime {
    pub(super) fn parse_op(&self, input: &JsValue) -> Result<NewOp> {
        if !input.is_object() {
            return Err(invalid_op(
                "the op must be an object like { collection, key, op, value }",
            ));
        }
        let field =
            |name: &str| js_sys::Reflect::get(input, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let text = |name: &str| -> Result<Option<String>> {
            let v = field(name);
            if v.is_undefined() || v.is_null() {
                return Ok(None);
            }
            v.as_string()
                .map(Some)
                .ok_or_else(|| invalid_op(format!("op.{name} must be a string")))
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
            Value::Null
        } else if value.is_undefined() {
            return Err(invalid_op(
                "op.value is required for put, patch and custom ops",
            ));
        } else {
            convert::from_js(&value, self.max_op_bytes).map_err(|e| match e {
                convert::NotJson::Unserializable(why) => {
                    invalid_op(format!("op.value is not JSON-serialisable: {why}"))
                }
                convert::NotJson::TooLarge(bytes) => invalid_op(format!(
                    "op.value is {bytes} bytes of JSON; the limit (options.maxOpBytes) is {}",
                    self.max_op_bytes
                )),
            })?
        };
        Ok(NewOp {
            collection,
            key,
            kind,
            payload,
            base_version: text("baseVersion")?,
        })
    }
}

fn invalid_op(message: impl Into<String>) -> Error {
    Error::InvalidOp(message.into())
}

pub(super) fn parse_id(id: &str) -> Result<OpId> {
    id.parse()
        .map_err(|_| Error::InvalidOp(format!("{id:?} is not an op id")))
}

pub(super) fn decode_docs(stored: Vec<JsValue>) -> Result<Vec<ConfirmedDoc>> {
    stored
        .into_iter()
        .map(|value| {
            let text = value.as_string().unwrap_or_default();
            serde_json::from_str(&text).map_err(|e| Error::CorruptRecord {
                id: "docs".to_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

pub(super) fn decode_records(stored: Vec<JsValue>) -> Result<Vec<OpRecord>> {
    stored
        .into_iter()
        .map(|value| {
            let text = value.as_string().ok_or_else(|| Error::CorruptRecord {
                id: "?".to_owned(),
                reason: "not a JSON string".to_owned(),
            })?;
            serde_json::from_str(&text).map_err(|e| Error::CorruptRecord {
                id: serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| "?".to_owned()),
                reason: e.to_string(),
            })
        })
        .collect()
}
