//! The app's commands: enqueue, drain, retry, discard, pause, resume, the status and op snapshots, and
//! the listeners registered with `subscribe` and `on`.

use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::Function;
use outbox_core::{OpRecord, OpState, Trigger};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use super::input::{op_member, parse_id};
use super::{Listener, Runtime};
use crate::clock;
use crate::convert;
use crate::error::{Error, Result};
use crate::events;

impl Runtime {
    /// Validates and enqueues one op. The view changes (and watchers fire) before this returns; the
    /// returned future resolves once the op is durable, or rolls the change back if storing it failed.
    pub fn enqueue(
        self: &Rc<Self>,
        input: JsValue,
    ) -> Result<impl std::future::Future<Output = Result<JsValue>> + 'static> {
        self.check_usable()?;
        let op = self.parse_op(&input)?;
        let given = op_member(&input, "value");
        self.validate(&op, &given)?;
        let now = clock::now();
        let (id, fx) = self.engine_mut()?.enqueue(op, now)?;
        if let Some(during) = self.tabs.enqueued_during_read.borrow_mut().as_mut() {
            during.push(id);
        }
        let idempotency_key = self
            .engine
            .borrow()
            .op(id)
            .map(|r| r.idempotency_key.to_string())
            .unwrap_or_default();
        let stored = self.run_enqueue(id, fx);
        Ok(async move {
            // The commit loop confirms the op to the engine, or abandons it (rolling the view back and
            // firing the watchers again) when the commit failed.
            stored.await.map_err(Error::from)?;
            Ok(convert::to_js(&json!({
                "id": id.to_string(),
                "idempotencyKey": idempotency_key,
            })))
        })
    }

    /// Sends everything sendable now and resolves once nothing is in flight.
    pub async fn drain(self: &Rc<Self>) -> Result<JsValue> {
        self.check_usable()?;
        let started_at = clock::now();
        let start = self.totals.get();
        self.history.trigger.set(Trigger::Manual);
        self.flush_confirmations();
        let fx = self.engine.borrow_mut().drain(clock::now());
        self.run_in_background(fx);
        if self.engine.borrow().batches_in_flight().next().is_some() {
            let (done, wait) = oneshot::channel();
            self.drain_waiters.borrow_mut().push(done);
            let _ = wait.await;
        }
        let end = self.totals.get();
        if !self.closed.get() {
            self.record_drain(
                started_at,
                end.acked - start.acked,
                end.retried - start.retried,
                end.failed - start.failed,
                end.conflicts - start.conflicts,
            );
        }
        let status = self.engine.borrow().status();
        Ok(convert::to_js(&json!({
            "acked": end.acked - start.acked,
            "retried": end.retried - start.retried,
            "failed": end.failed - start.failed,
            "conflicts": end.conflicts - start.conflicts,
            "remaining": status.pending + status.in_flight,
        })))
    }

    /// Retries one failed or conflicted op (or one waiting out a backoff) now.
    pub async fn retry(self: &Rc<Self>, id: &str) -> Result<()> {
        self.check_usable()?;
        let id = parse_id(id)?;
        self.history.trigger.set(Trigger::Manual);
        let fx = self.engine.borrow_mut().retry(id, clock::now())?;
        self.run(fx).await.map_err(Error::from)
    }

    /// Retries every failed and conflicted op.
    pub async fn retry_all(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        self.history.trigger.set(Trigger::Manual);
        let fx = self.engine.borrow_mut().retry_all(clock::now());
        self.run(fx).await.map_err(Error::from)
    }

    /// Removes an op from the outbox for good. Resolves once the removal is durable.
    pub async fn discard(self: &Rc<Self>, id: &str) -> Result<()> {
        self.check_usable()?;
        let id = parse_id(id)?;
        if let Some(deleted) = self.discard_quarantined(id) {
            return deleted.await;
        }
        self.history.trigger.set(Trigger::Manual);
        let fx = self.engine.borrow_mut().discard(id, clock::now())?;
        self.run(fx).await.map_err(Error::from)
    }

    /// Stops sending (ops are still accepted and stored).
    pub fn pause(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        let fx = self.engine.borrow_mut().pause(clock::now());
        self.run_in_background(fx);
        Ok(())
    }

    /// Starts sending again.
    pub fn resume(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        self.history.trigger.set(Trigger::Manual);
        self.flush_confirmations();
        let fx = self.engine.borrow_mut().resume(clock::now());
        self.run_in_background(fx);
        Ok(())
    }

    /// The status view-model.
    pub fn status(&self) -> Result<JsValue> {
        self.check_open()?;
        Ok(convert::to_js(&self.status_json()))
    }

    /// Snapshots of the ops in the given states, oldest first.
    pub fn ops_in(&self, states: &[OpState]) -> Result<JsValue> {
        self.check_open()?;
        let engine = self.engine.borrow();
        let mut ops: Vec<&OpRecord> = engine.ops().filter(|r| states.contains(&r.state)).collect();
        outbox_core::order::sort_by_key(&mut ops, |r| (0, r.seq, r.id.sort_key()));
        let mut list: Vec<String> = ops
            .into_iter()
            .map(crate::transport::snapshot_text)
            .collect();
        if states.contains(&OpState::Failed) {
            list.extend(self.quarantined_snapshots().iter().map(Value::to_string));
        }
        Ok(convert::text_to_js(&format!("[{}]", list.join(","))))
    }

    /// Registers a status subscriber (`event: None`) or an event listener; returns its id.
    pub fn listen(&self, event: Option<String>, callback: Function) -> Result<u32> {
        self.check_open()?;
        if let Some(name) = &event {
            if name != "*" && !events::EVENT_NAMES.contains(&name.as_str()) {
                return Err(Error::InvalidConfig(format!(
                    "unknown event {name:?}; expected one of {} or \"*\"",
                    events::EVENT_NAMES.join(", ")
                )));
            }
        }
        let id = self.next_listener.get() + 1;
        self.next_listener.set(id);
        self.listeners.borrow_mut().push(Listener {
            id,
            event,
            callback,
        });
        Ok(id)
    }

    /// Removes a listener.
    pub fn unlisten(&self, id: u32) {
        self.listeners.borrow_mut().retain(|l| l.id != id);
    }
}
