//! The optimistic view as the app sees it: `get`, `list`, watchers, documents the app ingests itself,
//! and the custom-op mutations the view applies.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Function;
use outbox_core::{ConfirmedDoc, Json};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::{call_app, report_error, Runtime};
use crate::by_name::ByName;
use crate::clock;
use crate::convert::{self, ObjectWriter};
use crate::error::{Error, Result};
use crate::transport::wire;
use crate::watchers::{Changed, Notify};

impl Runtime {
    /// The optimistic document (`undefined` when it does not exist).
    pub fn get(&self, collection: &str, key: &str) -> Result<JsValue> {
        self.check_open()?;
        let engine = self.engine_ref()?;
        Ok(engine
            .view_item(collection, key)
            .and_then(|item| item.value)
            .map_or(JsValue::UNDEFINED, convert::json_to_js))
    }

    /// The collection's documents: `[{ key, value, version, pending }]`, ordered by key.
    pub fn list(&self, collection: &str) -> Result<JsValue> {
        self.check_open()?;
        let engine = self.engine_ref()?;
        // Written as text: each document goes in as the JSON text the view holds.
        let mut out = String::from("[");
        for (i, item) in engine.view_list(collection).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut o = ObjectWriter::open(&mut out);
            o.string("key", item.key)
                .json("value", item.value.map_or("null", Json::text));
            match item.version {
                Some(version) => o.string("version", &wire::api_version(version)),
                None => o.json("version", "null"),
            };
            o.json("pending", &item.pending.to_string()).close();
        }
        out.push(']');
        Ok(convert::text_to_js(&out))
    }

    /// Registers a watcher of a collection (`key: None`) or of one document; returns its id.
    pub fn watch(
        &self,
        collection: String,
        key: Option<String>,
        callback: Function,
    ) -> Result<u32> {
        self.check_open()?;
        Ok(self.watchers.add(collection, key, callback))
    }

    /// Removes a watcher.
    pub fn unwatch(&self, id: u32) {
        self.watchers.remove(id);
    }

    /// Documents the app loaded by its own means: `[{ key, version, value?, deleted? }]`. Newer
    /// versions replace the confirmed state; pending ops are replayed on top.
    pub async fn ingest(self: &Rc<Self>, collection: String, docs: JsValue) -> Result<()> {
        self.check_usable()?;
        let invalid = |m: String| Error::InvalidOp(format!("ingest(collection, docs): {m}"));
        let Ok(Value::Array(docs)) = convert::from_js(&docs, usize::MAX) else {
            return Err(invalid(
                "docs must be an array of { key, version, value }".into(),
            ));
        };
        let mut confirmed = Vec::with_capacity(docs.len());
        for (i, doc) in docs.into_iter().enumerate() {
            let key = doc
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("docs[{i}].key is required (a string)")))?;
            // An opaque version, like every version the API shows; the engine keeps its ETag form.
            let version = match doc.get("version") {
                Some(Value::String(v)) => wire::etag_from_api(v),
                Some(Value::Number(n)) => wire::etag_from_api(&n.to_string()),
                _ => None,
            }
            .ok_or_else(|| {
                invalid(format!(
                    "docs[{i}].version is required: a number or a string of visible ASCII without quotes; it decides which copy is newer"
                ))
            })?;
            let deleted = doc.get("deleted").and_then(Value::as_bool).unwrap_or(false);
            confirmed.push(ConfirmedDoc {
                collection: collection.clone(),
                key: key.to_owned(),
                version: Some(version),
                doc: match doc.get("value") {
                    Some(value) if !deleted => Json::from(value),
                    _ => Json::null(),
                },
                deleted,
                acks: Vec::new(),
            });
        }
        let fx = self.engine_mut()?.ingest(confirmed, clock::now());
        self.run(fx).await.map_err(Error::from)
    }

    /// Registers how a custom op changes the view: `apply(current, value) => newDoc`.
    pub fn register_mutation(self: &Rc<Self>, name: String, apply: Function) -> Result<()> {
        self.check_usable()?;
        self.mutations.borrow_mut().insert(name, apply);
        let fx = self.engine_mut()?.refresh_view(clock::now());
        self.run_in_background(fx);
        Ok(())
    }

    /// Calls a callback just registered with the current value, as every later change will: a watcher
    /// or subscriber then needs no separate first read (and cannot miss a change between the two).
    pub fn call_with_current(&self, callback: &Function, current: Result<JsValue>) {
        if let Ok(current) = current {
            call_app(callback, &current);
        }
    }

    pub(super) fn notify_watchers(&self, changed: &Changed) {
        for notify in self.watchers.due(changed) {
            let (callback, arg) = match notify {
                Notify::Collection(f, collection) => (f, self.list(&collection)),
                Notify::Doc(f, collection, key) => (f, self.get(&collection, &key)),
            };
            if let Ok(arg) = arg {
                call_app(&callback, &arg);
            }
        }
    }
}

/// The engine's custom-op function: looks the op's name up among the app's registered mutations and
/// calls it with `(current, value)`. No function, a throw, or `undefined` leave the document as it is.
pub(super) fn mutator(
    mutations: Rc<RefCell<ByName<Function>>>,
) -> Box<outbox_core::view::MutatorFn> {
    Box::new(move |name, current, payload| {
        let apply = mutations.borrow().get(name).cloned()?;
        let current = current.map_or(JsValue::UNDEFINED, convert::json_to_js);
        match apply.call2(&JsValue::UNDEFINED, &current, &convert::json_to_js(payload)) {
            Ok(next) if next.is_undefined() => None,
            Ok(next) => convert::json_from_js(&next, usize::MAX).ok(),
            Err(error) => {
                report_error(&error);
                None
            }
        }
    })
}
