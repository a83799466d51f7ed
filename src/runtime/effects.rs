//! Running the core's effects, in the order the core's `EffectQueue` decides.
//!
//! For the effects of one engine call, [`Runtime::run`]:
//! 1. hands them to the queue ([`super::durable`] commits its groups): storage writes join the group of
//!    the current task, and each send is held until the writes before it about its ops (and any meta
//!    write) are durable, so no request carries a key, a precondition or an in-flight mark that a crash
//!    could still lose;
//! 2. schedules each wake-up as it meets it (a new timer replaces the last: the core keeps one wake-up);
//! 3. starts the sends that wait for nothing;
//! 4. notifies the view's watchers, once per changed document or collection;
//! 5. emits the events to the app's listeners in the core's order; a conflict held for the collection's
//!    resolver function goes to the resolver instead, and is emitted once its answer is applied.
//!
//! The engine is no longer borrowed by then, so a listener may call back into the outbox. A send's reply
//! goes back into the engine, whose effects run the same way. An enqueued op is confirmed to the engine,
//! and so becomes sendable, only once it is durable: confirmations are queued here and flushed once per
//! burst.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use js_sys::Function;
use outbox_core::{Accepted, Batch, Effect, Event, OpId, Trigger, Write as CoreWrite};
use wasm_bindgen::prelude::*;

use super::{call_app, Runtime};
use crate::clock;
use crate::convert;
use crate::events;
use crate::store::StoreError;
use crate::transport::SendOutcome;

type Commit = Pin<Box<dyn Future<Output = std::result::Result<(), StoreError>>>>;

impl Runtime {
    /// Runs effects; the returned future resolves when their storage writes are durable.
    pub(super) fn run(self: &Rc<Self>, effects: Vec<Effect>) -> Commit {
        self.history.note_sends(&effects);
        self.tabs.note_effects(&effects);
        let accepted = self.durable.queue.borrow_mut().accept(effects);
        let group = self.carry_out(accepted);
        Box::pin(self.durable(group))
    }

    /// [`Runtime::run`] with writes of the runtime's own (the pull cursor) in the same group.
    pub(super) fn run_with(
        self: &Rc<Self>,
        effects: Vec<Effect>,
        writes: Vec<CoreWrite>,
    ) -> Commit {
        self.history.note_sends(&effects);
        self.tabs.note_effects(&effects);
        let mut accepted = self.durable.queue.borrow_mut().accept(effects);
        if let Some(group) = self.durable.queue.borrow_mut().add_writes(writes) {
            accepted.group = Some(group);
        }
        let group = self.carry_out(accepted);
        Box::pin(self.durable(group))
    }

    /// The effects of `Engine::enqueue` for op `id`; the future answers the enqueue itself (its commit
    /// may fail while others' writes are kept for a retry).
    pub(super) fn run_enqueue(self: &Rc<Self>, id: OpId, effects: Vec<Effect>) -> Commit {
        self.history.note_sends(&effects);
        let accepted = self.durable.queue.borrow_mut().accept_enqueue(id, effects);
        let stored = self.enqueue_durable(id);
        self.carry_out(accepted);
        Box::pin(stored)
    }

    /// Carries out what the queue left for now; returns the group the writes joined.
    fn carry_out(self: &Rc<Self>, accepted: Accepted) -> Option<u64> {
        let mut to_emit = Vec::new();
        let mut changed = Vec::new();
        for effect in accepted.now {
            match effect {
                Effect::Send(batch) => self.start_send(batch),
                Effect::ScheduleWake(at) => self.schedule_wake(at),
                Effect::Emit(Event::ViewChanged { collection, key }) => {
                    changed.push((collection, key));
                }
                Effect::Emit(event) => to_emit.push(event),
                // Storage effects stay in the queue; `accept` never returns them.
                Effect::Persist(_)
                | Effect::Delete(_)
                | Effect::PersistDoc(_)
                | Effect::PersistRetention(_)
                | Effect::PersistClock(_)
                | Effect::PersistMark(_)
                | Effect::DeleteMark(_) => {}
            }
        }
        if accepted.group.is_some() {
            self.schedule_commit();
        }
        // Watchers first: the view is the state, events tell how it got there.
        self.notify_watchers(&changed);
        for event in &to_emit {
            // A conflict the collection's resolver settles is told once it answered (`ask_resolver`).
            if !self.ask_resolver(event) {
                self.emit(event);
            }
            self.fetch_current(event);
        }
        accepted.group
    }

    /// Runs effects without waiting for their writes (a failed commit is reported and retried by
    /// [`super::durable`], never lost silently).
    pub(super) fn run_in_background(self: &Rc<Self>, effects: Vec<Effect>) {
        self.history.note_sends(&effects);
        self.tabs.note_effects(&effects);
        let accepted = self.durable.queue.borrow_mut().accept(effects);
        self.carry_out(accepted);
    }

    /// Sends one batch the queue released, in a task of its own.
    pub(super) fn start_send(self: &Rc<Self>, batch: Batch) {
        let this = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move { this.send(batch).await });
    }

    async fn send(self: Rc<Self>, batch: Batch) {
        let trigger = self.history.take_trigger(batch.id);
        let started_at = clock::now();
        let outcome = self.transport.send(&batch).await;
        if self.closed.get() {
            return;
        }
        self.record_send(&batch, trigger, started_at, &outcome);
        // What the answer sets off (the lane's next op, a retry at once after a 401) continues this
        // pump, so it carries the same trigger.
        self.history.trigger.set(trigger);
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
        self.tab_forward(event);
        let name = events::event_name(event);
        let is_status = matches!(event, Event::StatusChanged { .. });
        if !self.has_listeners(name, is_status) {
            return;
        }
        self.dispatch(name, &convert::to_js(&events::event_json(event)));
    }

    fn has_listeners(&self, name: &str, is_status: bool) -> bool {
        self.listeners.borrow().iter().any(|l| match &l.event {
            None => is_status,
            Some(e) => e == name || e == "*",
        })
    }

    /// Calls the listeners of event `name` (status subscribers too, for a status change) with `event_js`.
    pub(super) fn dispatch(&self, name: &str, event_js: &JsValue) {
        let is_status = name == "status_changed";
        // Copied out first: a listener may subscribe or unsubscribe while it runs.
        let targets: Vec<(bool, Function)> = self
            .listeners
            .borrow()
            .iter()
            .filter_map(|l| match &l.event {
                None if is_status => Some((true, l.callback.clone())),
                Some(e) if e == name || e == "*" => Some((false, l.callback.clone())),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let status_js = is_status.then(|| convert::to_js(&self.status_json()));
        for (is_status, callback) in targets {
            let arg = if is_status {
                status_js.as_ref().unwrap_or(event_js)
            } else {
                event_js
            };
            call_app(&callback, arg);
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
            this.history.trigger.set(Trigger::Timer);
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
                this.history.trigger.set(Trigger::Enqueue);
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
