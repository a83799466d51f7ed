//! Settling held conflicts: by the app with `resolve`, or by the collection's resolver function.

use std::rc::Rc;

use outbox_core::{ConflictResolution, Effect, Event, Json, OpId, OpState};
use wasm_bindgen::prelude::*;

use super::input::parse_id;
use super::{report_error, Runtime};
use crate::clock;
use crate::convert;
use crate::error::{Error, Result};

impl Runtime {
    /// Settles a held conflict, or an op of unknown outcome: keep the server's version, resend the local
    /// one, or send a merge. A resend is conditional on the server state the engine holds (`If-Match` its
    /// version, or `If-None-Match: *` when the document is deleted), under a new idempotency key.
    pub async fn resolve(self: &Rc<Self>, id: &str, resolution: JsValue) -> Result<()> {
        self.check_usable()?;
        let id = parse_id(id)?;
        let (fx, _) = self.resolution_effects(id, &resolution)?;
        self.run(fx).await.map_err(Error::from)
    }

    /// The engine's side of a resolution, and what it does with the op: `server` drops it (the server's
    /// version stands: `server-wins`), `local` resends it on top of the server's version (`client-wins`),
    /// `merged` sends the merge (`merged`).
    fn resolution_effects(
        &self,
        id: OpId,
        resolution: &JsValue,
    ) -> Result<(Vec<Effect>, ConflictResolution)> {
        let choice = js_sys::Reflect::get(resolution, &"use".into())
            .ok()
            .and_then(|v| v.as_string());
        let (payload, state) = {
            let engine = self.engine_ref()?;
            let record = engine.op(id).ok_or(outbox_core::CoreError::UnknownOp(id))?;
            (record.payload.clone(), record.state)
        };
        if !matches!(state, OpState::Conflict | OpState::Unknown) {
            return Err(outbox_core::CoreError::WrongState { id, state }.into());
        }
        let now = clock::now();
        let done = match choice.as_deref() {
            Some("server") => (
                self.engine_mut()?.discard(id, now)?,
                ConflictResolution::Dropped,
            ),
            Some("local") => {
                let fx = self.engine_mut()?.resolve(id, payload, None, now)?;
                (fx, ConflictResolution::Rebased)
            }
            Some("merged") => {
                let value =
                    js_sys::Reflect::get(resolution, &"value".into()).unwrap_or(JsValue::UNDEFINED);
                let value = convert::exact_from_js(&value, "resolution.value", self.max_op_bytes)
                    .map_err(|e| match e {
                    convert::NotJson::Inexact(why) => Error::InvalidOp(why),
                    _ => Error::InvalidOp(
                        "resolution.value must be the merged document (JSON)".into(),
                    ),
                })?;
                let fx = self.engine_mut()?.resolve(id, value, None, now)?;
                (fx, ConflictResolution::Merged)
            }
            _ => {
                return Err(Error::InvalidOp(
                    "resolution.use must be \"server\", \"local\" or \"merged\"".into(),
                ))
            }
        };
        Ok(done)
    }

    /// A conflict held for the collection's resolver function: ask it, then apply its answer. Returns
    /// true when the resolver takes the event over: its `conflict` event is then told once the answer is
    /// applied, with what the answer did (`merged`, `client-wins` for `local`, `server-wins` for
    /// `server`), and before the effects of that answer. Told at once as `held`, it would send the app
    /// (and `settled(id)`) to a conflict the resolver is already settling. When the resolver fails, it is
    /// told as `held`: the op stays in `conflicts()`.
    pub(super) fn ask_resolver(self: &Rc<Self>, event: &Event) -> bool {
        let Event::Conflict {
            id,
            resolution: ConflictResolution::Held,
            server_doc,
            ..
        } = event
        else {
            return false;
        };
        let Some(record) = self.engine.borrow().op(*id).cloned() else {
            return false;
        };
        let Some(resolver) = self.resolvers.get(&record.collection).cloned() else {
            return false;
        };
        let local = convert::json_to_js(&record.payload);
        let server = server_doc.as_ref().map_or(JsValue::NULL, convert::to_js);
        let op = convert::text_to_js(&crate::transport::snapshot_text(&record));
        let (this, id, event) = (Rc::clone(self), *id, event.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let answer = match resolver.call3(&JsValue::UNDEFINED, &local, &server, &op) {
                Ok(answer) => {
                    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&answer)).await
                }
                Err(e) => Err(e),
            };
            let applied = match answer {
                Ok(resolution) => this
                    .check_usable()
                    .and_then(|()| this.resolution_effects(id, &resolution)),
                Err(e) => Err(Error::InvalidOp(format!(
                    "the conflict resolver threw: {}",
                    convert::message(&e)
                ))),
            };
            match applied {
                Ok((fx, done)) => {
                    this.emit(&resolved_as(event, done));
                    if let Err(error) = this.run(fx).await {
                        report_error(&Error::from(error).to_js().into());
                    }
                }
                Err(error) => {
                    // Still held, unless the app settled it meanwhile (its own events told that).
                    let held = this
                        .engine_ref()
                        .is_ok_and(|e| e.op(id).is_some_and(|r| r.state == OpState::Conflict));
                    if held {
                        this.emit(&event);
                    }
                    report_error(&error.to_js().into());
                }
            }
        });
        true
    }
}

/// A conflict event told with what its resolution did.
fn resolved_as(mut event: Event, done: ConflictResolution) -> Event {
    if let Event::Conflict { resolution, .. } = &mut event {
        *resolution = done;
    }
    event
}

impl Runtime {
    /// An op became unknown: fetch the server's current document for the app to decide on (fetch
    /// transport only; a custom transport's app can `ingest` it). A failure leaves the last known one.
    pub(super) fn fetch_current(self: &Rc<Self>, event: &Event) {
        let Event::Unknown {
            collection, key, ..
        } = event
        else {
            return;
        };
        if !matches!(self.transport, crate::transport::Transport::Fetch(_)) {
            return;
        }
        let (this, collection, key) = (Rc::clone(self), collection.to_string(), key.to_string());
        wasm_bindgen_futures::spawn_local(async move {
            let crate::transport::Transport::Fetch(fetch) = &this.transport else {
                return;
            };
            let Ok(response) = fetch.get_doc(&collection, &key).await else {
                return;
            };
            // A tombstone's version is in the problem's `current` (docs/PROTOCOL.md §5).
            let version = response.header("etag").map(str::to_owned).or_else(|| {
                let body = response.body_value()?;
                body.get("current")?
                    .get("etag")?
                    .as_str()
                    .map(str::to_owned)
            });
            let doc = match response.status {
                200 => response.body.clone().unwrap_or_default(),
                410 => Json::null(),
                _ => return,
            };
            let state = outbox_core::ConfirmedDoc {
                collection,
                key,
                version,
                deleted: response.status == 410,
                doc,
                acks: Vec::new(),
            };
            if this.check_usable().is_ok() {
                if let Ok(mut engine) = this.engine_mut() {
                    let fx = engine.ingest(vec![state], clock::now());
                    drop(engine);
                    this.run_in_background(fx);
                }
            }
        });
    }
}
