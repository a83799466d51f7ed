//! Running the core's effects. This module decides the order in which they are carried out.
//!
//! For the effects of one engine call, [`Runtime::run`]:
//! 1. schedules each wake-up as it meets it (a new timer replaces the last: the core keeps one wake-up);
//! 2. submits all storage writes (`Persist`, `Delete`, `PersistDoc`) to the group commit at once, so they
//!    share one transaction (an ack's op delete and its confirmed document among them);
//! 3. spawns each send as a task of its own. It starts after the writes were submitted, but it does not
//!    wait for their commit (the core's `Effect` explains why a send need not);
//! 4. notifies the view's watchers, once per changed document or collection;
//! 5. emits the events to the app's listeners in the core's order, each followed by the conflict
//!    resolver it may call.
//!
//! The engine is no longer borrowed by then, so a listener may call back into the outbox. A send's reply
//! goes back into the engine, whose effects run the same way. An enqueued op is confirmed to the engine,
//! and so becomes sendable, only once it is durable: confirmations are queued here and flushed once per
//! burst.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use js_sys::Function;
use outbox_core::{Batch, Effect, Event, OpId};
use wasm_bindgen::prelude::*;

use super::{report_error, Runtime};
use crate::clock;
use crate::convert;
use crate::error::Error;
use crate::events;
use crate::store::{StoreError, Write};
use crate::transport::SendOutcome;

type Commit = Pin<Box<dyn Future<Output = std::result::Result<(), StoreError>>>>;

impl Runtime {
    /// Runs effects; the returned future resolves when their storage writes are durable.
    pub(super) fn run(self: &Rc<Self>, effects: Vec<Effect>) -> Commit {
        let mut writes = Vec::new();
        let mut to_send = Vec::new();
        let mut to_emit = Vec::new();
        let mut changed = BTreeSet::new();
        for effect in effects {
            match effect {
                Effect::Persist(record) => writes.push(Write::PutOp {
                    id: record.id.to_string(),
                    record: JsValue::from_str(
                        &serde_json::to_string(&record).expect("op records always serialize"),
                    ),
                }),
                Effect::Delete(id) => writes.push(Write::DeleteOp { id: id.to_string() }),
                // In the same call as an ack's Delete, so the same group commit: one transaction.
                Effect::PersistDoc(doc) => writes.push(Write::PutDoc {
                    collection: doc.collection.clone(),
                    key: doc.key.clone(),
                    record: JsValue::from_str(
                        &serde_json::to_string(&doc).expect("documents always serialize"),
                    ),
                }),
                Effect::Send(batch) => to_send.push(batch),
                Effect::ScheduleWake(at) => self.schedule_wake(at),
                Effect::Emit(Event::ViewChanged { collection, key }) => {
                    changed.insert((collection, key));
                }
                Effect::Emit(event) => to_emit.push(event),
            }
        }
        let commit: Commit = if writes.is_empty() {
            Box::pin(async { Ok(()) })
        } else {
            Box::pin(self.group.submit(writes))
        };
        for batch in to_send {
            let this = Rc::clone(self);
            wasm_bindgen_futures::spawn_local(async move { this.send(batch).await });
        }
        // Watchers first: the view is the state, events tell how it got there.
        self.notify_watchers(&changed);
        for event in &to_emit {
            self.emit(event);
            self.ask_resolver(event);
        }
        commit
    }

    /// Runs effects without waiting for their writes; a failed write is reported, not lost silently.
    pub(super) fn run_in_background(self: &Rc<Self>, effects: Vec<Effect>) {
        let commit = self.run(effects);
        let this = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(error) = commit.await {
                if let Some(this) = this.upgrade().filter(|this| !this.closed.get()) {
                    this.note_storage_error(&Error::from(error));
                }
            }
        });
    }

    async fn send(self: Rc<Self>, batch: Batch) {
        let outcome = self.transport.send(&batch).await;
        if self.closed.get() {
            return;
        }
        let (now, wall) = (clock::now(), clock::wall_now());
        let result = {
            let mut engine = self.engine.borrow_mut();
            match &outcome {
                SendOutcome::Reply(reply) => engine.on_reply(batch.id, reply, now, wall),
                SendOutcome::NoAnswer(reason) => engine.on_no_answer(batch.id, Some(reason), now),
            }
        };
        // An unknown batch is a reply that arrived after a pause/close cycle made it moot: nothing to do.
        if let Ok(fx) = result {
            self.run_in_background(fx);
        }
        self.settle_drain_waiters();
    }

    pub(super) fn emit(&self, event: &Event) {
        let mut totals = self.totals.get();
        match event {
            Event::Acked { .. } => totals.acked += 1,
            Event::RetryScheduled { .. } => totals.retried += 1,
            Event::Failed { .. } => totals.failed += 1,
            Event::Conflict { .. } => totals.conflicts += 1,
            _ => {}
        }
        self.totals.set(totals);
        let name = events::event_name(event);
        // Copied out first: a listener may subscribe or unsubscribe while it runs.
        let targets: Vec<(bool, Function)> = self
            .listeners
            .borrow()
            .iter()
            .filter_map(|l| match &l.event {
                None if matches!(event, Event::StatusChanged { .. }) => {
                    Some((true, l.callback.clone()))
                }
                Some(e) if e == name || e == "*" => Some((false, l.callback.clone())),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let event_js = convert::to_js(&events::event_json(event));
        let status_js = match event {
            Event::StatusChanged { .. } => Some(convert::to_js(&self.status_json())),
            _ => None,
        };
        for (is_status, callback) in targets {
            let arg = if is_status {
                status_js.as_ref().unwrap_or(&event_js)
            } else {
                &event_js
            };
            if let Err(error) = callback.call1(&JsValue::UNDEFINED, arg) {
                // A throwing listener must not break the engine; the error still surfaces in the console.
                report_error(&error);
            }
        }
    }

    fn schedule_wake(self: &Rc<Self>, at: u64) {
        // One millisecond of slack: the timer's clock and the engine's are rounded differently, and a tick
        // that arrives a hair early finds nothing expired.
        let delay = (at.saturating_sub(clock::now()) + 1).min(i32::MAX as u64) as u32;
        let generation = self.wake_generation.get() + 1;
        self.wake_generation.set(generation);
        let this = Rc::downgrade(self);
        let timer = Timeout::new(delay, move || {
            let Some(this) = this.upgrade() else { return };
            if this.check_usable().is_err() {
                return;
            }
            let fx = this.engine.borrow_mut().tick(clock::now());
            this.run_in_background(fx);
            // The engine announces a wake-up only when it changes. Re-arm from its current one, so a tick
            // that expired nothing cannot leave the outbox without a timer.
            let next = this.engine.borrow().next_wake();
            if let (Some(next), true) = (next, this.wake_generation.get() == generation) {
                this.schedule_wake(next);
            }
        });
        // Replacing the timer drops (cancels) the previous one: the core keeps only one wake-up.
        *self.wake.borrow_mut() = Some(timer);
    }

    /// Ops become sendable only once durable. Confirming them in one call per burst lets the engine put a
    /// whole burst of enqueues into full batches instead of sending the first one alone.
    pub(super) fn queue_confirmation(self: &Rc<Self>, id: OpId) {
        self.unconfirmed.borrow_mut().push(id);
        if !self.auto_drain || self.confirm_timer.borrow().is_some() {
            return;
        }
        let this = Rc::downgrade(self);
        let timer = Timeout::new(self.drain_delay_ms, move || {
            if let Some(this) = this.upgrade() {
                this.flush_confirmations();
            }
        });
        *self.confirm_timer.borrow_mut() = Some(timer);
    }

    pub(super) fn flush_confirmations(self: &Rc<Self>) {
        self.confirm_timer.borrow_mut().take();
        let ids = std::mem::take(&mut *self.unconfirmed.borrow_mut());
        if ids.is_empty() || self.closed.get() {
            return;
        }
        let fx = self.engine.borrow_mut().confirm_stored(&ids, clock::now());
        self.run_in_background(fx);
    }

    fn settle_drain_waiters(&self) {
        if self.engine.borrow().batches_in_flight().next().is_none() {
            for waiter in self.drain_waiters.borrow_mut().drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}
