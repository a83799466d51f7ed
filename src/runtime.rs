//! The runtime: carries out the core's decisions in the browser, and does nothing else.
//!
//! Every engine call returns effects; [`Runtime::apply`] runs them: storage writes go to one group commit,
//! sends go to the transport (each in its own task, whose reply goes back into the engine), wake-ups become
//! timers, and events go to the app's listeners. The engine is only borrowed for the length of one call, so
//! a listener may call back into the outbox.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use gloo_timers::callback::Timeout;
use js_sys::Function;
use outbox_core::{Batch, Effect, Engine, Event, NewOp, OpId, OpKind, OpRecord, OpState};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::clock;
use crate::convert;
use crate::error::{Error, Result};
use crate::events;
use crate::options::Options;
use crate::store::{GroupCommit, IdbStore, StoreError, Write};
use crate::transport::{SendOutcome, Transport};

type Commit = Pin<Box<dyn Future<Output = std::result::Result<(), StoreError>>>>;

/// Counts of outcomes, for `drain()`'s report.
#[derive(Clone, Copy, Default)]
struct Totals {
    acked: u64,
    retried: u64,
    failed: u64,
    conflicts: u64,
}

/// An app callback registered with `subscribe` or `on`.
struct Listener {
    id: u32,
    /// `None` for status subscribers; else the event name, or `"*"` for every event.
    event: Option<String>,
    callback: Function,
}

/// A DOM event listener the runtime added, kept to remove it on close.
struct DomListener {
    target: web_sys::EventTarget,
    event: &'static str,
    _closure: Closure<dyn FnMut()>,
}

/// One open outbox.
pub struct Runtime {
    engine: RefCell<Engine>,
    group: Rc<GroupCommit>,
    transport: Transport,
    auto_drain: bool,
    drain_delay_ms: u32,
    max_op_bytes: usize,
    listeners: RefCell<Vec<Listener>>,
    next_listener: Cell<u32>,
    wake: RefCell<Option<Timeout>>,
    /// Bumped by every `schedule_wake`, so a firing timer knows whether a newer one replaced it.
    wake_generation: Cell<u64>,
    confirm_timer: RefCell<Option<Timeout>>,
    unconfirmed: RefCell<Vec<OpId>>,
    drain_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    totals: Cell<Totals>,
    closed: Cell<bool>,
    fatal: RefCell<Option<Error>>,
    dom: RefCell<Vec<DomListener>>,
}

impl Runtime {
    /// Opens the store, restores the queue from it, and starts the triggers.
    pub async fn open(options: Options) -> Result<Rc<Runtime>> {
        let store = Rc::new(IdbStore::open(&options.name, options.durability).await?);
        let records = decode_records(store.load_ops().await?)?;
        let engine = Engine::restore(options.engine.clone(), clock::random_seed(), records)?;
        let transport = match options.transport {
            crate::options::TransportOptions::Fetch(f) => {
                Transport::Fetch(crate::transport::FetchTransport::new(f))
            }
            crate::options::TransportOptions::Custom(f) => {
                Transport::Custom(crate::transport::CustomTransport::new(f))
            }
        };
        let runtime = Rc::new(Runtime {
            engine: RefCell::new(engine),
            group: GroupCommit::new(store),
            transport,
            auto_drain: options.auto_drain,
            drain_delay_ms: options.drain_delay_ms,
            max_op_bytes: options.max_op_bytes,
            listeners: RefCell::new(Vec::new()),
            next_listener: Cell::new(0),
            wake: RefCell::new(None),
            wake_generation: Cell::new(0),
            confirm_timer: RefCell::new(None),
            unconfirmed: RefCell::new(Vec::new()),
            drain_waiters: RefCell::new(Vec::new()),
            totals: Cell::new(Totals::default()),
            closed: Cell::new(false),
            fatal: RefCell::new(None),
            dom: RefCell::new(Vec::new()),
        });
        runtime.install_triggers();
        let weak = Rc::downgrade(&runtime);
        runtime.store().on_upgrade_blocked(move || {
            if let Some(runtime) = weak.upgrade() {
                runtime.note_storage_error(&Error::Store(StoreError::UpgradeBlocked));
            }
        });
        if !navigator_online() {
            let fx = runtime.engine.borrow_mut().set_online(false, clock::now());
            runtime.run_in_background(fx, None);
        }
        if runtime.auto_drain {
            let fx = runtime.engine.borrow_mut().drain(clock::now());
            runtime.run_in_background(fx, None);
        }
        Ok(runtime)
    }

    // ------------------------------------------------------------------------------------------
    // Commands
    // ------------------------------------------------------------------------------------------

    /// Validates, enqueues and persists one op. Resolves once the op is durable.
    pub async fn enqueue(self: &Rc<Self>, input: JsValue) -> Result<JsValue> {
        self.check_usable()?;
        let op = self.parse_op(&input)?;
        let now = clock::now();
        let (id, fx) = self.engine.borrow_mut().enqueue(op, now)?;
        let idempotency_key = self
            .engine
            .borrow()
            .op(id)
            .map(|r| r.idempotency_key.to_string())
            .unwrap_or_default();
        match self.run(fx, None).await {
            Ok(()) => {
                self.queue_confirmation(id);
                Ok(convert::to_js(&json!({
                    "id": id.to_string(),
                    "idempotencyKey": idempotency_key,
                })))
            }
            Err(error) => {
                // Nothing was written (the group's transaction rolled back whole): take the op back out of
                // the engine so memory matches storage again.
                if let Ok(fx) = self.engine.borrow_mut().discard(id, clock::now()) {
                    let fx = fx
                        .into_iter()
                        .filter(|e| {
                            !matches!(e, Effect::Delete(_) | Effect::Emit(Event::Discarded { .. }))
                        })
                        .collect();
                    self.run_in_background(fx, None);
                }
                let error = Error::from(error);
                self.note_storage_error(&error);
                Err(error)
            }
        }
    }

    /// Sends everything sendable now and resolves once nothing is in flight.
    pub async fn drain(self: &Rc<Self>) -> Result<JsValue> {
        self.check_usable()?;
        let start = self.totals.get();
        self.flush_confirmations();
        let fx = self.engine.borrow_mut().drain(clock::now());
        self.run_in_background(fx, None);
        if self.engine.borrow().batches_in_flight().next().is_some() {
            let (done, wait) = oneshot::channel();
            self.drain_waiters.borrow_mut().push(done);
            let _ = wait.await;
        }
        let end = self.totals.get();
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
        let fx = self.engine.borrow_mut().retry(id, clock::now())?;
        self.run(fx, None).await.map_err(Error::from)
    }

    /// Retries every failed and conflicted op.
    pub async fn retry_all(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        let fx = self.engine.borrow_mut().retry_all(clock::now());
        self.run(fx, None).await.map_err(Error::from)
    }

    /// Removes an op from the outbox for good. Resolves once the removal is durable.
    pub async fn discard(self: &Rc<Self>, id: &str) -> Result<()> {
        self.check_usable()?;
        let id = parse_id(id)?;
        let fx = self.engine.borrow_mut().discard(id, clock::now())?;
        self.run(fx, None).await.map_err(Error::from)
    }

    /// Stops sending (ops are still accepted and stored).
    pub fn pause(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        let fx = self.engine.borrow_mut().pause(clock::now());
        self.run_in_background(fx, None);
        Ok(())
    }

    /// Starts sending again.
    pub fn resume(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        self.flush_confirmations();
        let fx = self.engine.borrow_mut().resume(clock::now());
        self.run_in_background(fx, None);
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
        ops.sort_by_key(|r| r.seq);
        let list: Vec<Value> = ops
            .into_iter()
            .map(crate::transport::snapshot_json)
            .collect();
        Ok(convert::to_js(&Value::Array(list)))
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

    /// Stops everything and closes the database. In-flight requests are abandoned: their ops stay stored
    /// and are sent again, with the same idempotency keys, by the next open.
    pub async fn close(self: &Rc<Self>) -> Result<()> {
        if self.closed.replace(true) {
            return Ok(());
        }
        self.remove_dom_listeners();
        self.wake.borrow_mut().take();
        self.confirm_timer.borrow_mut().take();
        self.listeners.borrow_mut().clear();
        for waiter in self.drain_waiters.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
        self.group.store().close();
        Ok(())
    }

    fn remove_dom_listeners(&self) {
        for listener in self.dom.borrow_mut().drain(..) {
            let _ = listener.target.remove_event_listener_with_callback(
                listener.event,
                listener._closure.as_ref().unchecked_ref(),
            );
        }
    }

    /// The store, for test hooks.
    pub fn store(&self) -> &Rc<IdbStore> {
        self.group.store()
    }

    // ------------------------------------------------------------------------------------------
    // Running effects
    // ------------------------------------------------------------------------------------------

    /// Runs effects; the returned future resolves when their storage writes are durable.
    fn run(self: &Rc<Self>, effects: Vec<Effect>, sent: Option<&Batch>) -> Commit {
        let mut writes = Vec::new();
        let mut to_send = Vec::new();
        let mut to_emit = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(record) => writes.push(Write::PutOp {
                    id: record.id.to_string(),
                    record: JsValue::from_str(
                        &serde_json::to_string(&record).expect("op records always serialize"),
                    ),
                }),
                Effect::Delete(id) => writes.push(Write::DeleteOp { id: id.to_string() }),
                Effect::Send(batch) => to_send.push(batch),
                Effect::ScheduleWake(at) => self.schedule_wake(at),
                Effect::Emit(event) => {
                    if let (Event::Acked { id, version, doc }, Some(batch)) = (&event, sent) {
                        // The ack's op delete and its confirmed doc commit in the same transaction.
                        if let Some(op) = batch.ops.iter().find(|op| op.id == *id) {
                            writes.push(confirmed_doc_write(op, version, doc));
                        }
                    }
                    to_emit.push(event);
                }
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
        for event in &to_emit {
            self.emit(event);
        }
        commit
    }

    /// Runs effects without waiting for their writes; a failed write is reported, not lost silently.
    fn run_in_background(self: &Rc<Self>, effects: Vec<Effect>, sent: Option<&Batch>) {
        let commit = self.run(effects, sent);
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
            self.run_in_background(fx, Some(&batch));
        }
        self.settle_drain_waiters();
    }

    fn emit(&self, event: &Event) {
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
            this.run_in_background(fx, None);
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
    fn queue_confirmation(self: &Rc<Self>, id: OpId) {
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

    fn flush_confirmations(self: &Rc<Self>) {
        self.confirm_timer.borrow_mut().take();
        let ids = std::mem::take(&mut *self.unconfirmed.borrow_mut());
        if ids.is_empty() || self.closed.get() {
            return;
        }
        let fx = self.engine.borrow_mut().confirm_stored(&ids, clock::now());
        self.run_in_background(fx, None);
    }

    fn settle_drain_waiters(&self) {
        if self.engine.borrow().batches_in_flight().next().is_none() {
            for waiter in self.drain_waiters.borrow_mut().drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Triggers
    // ------------------------------------------------------------------------------------------

    fn install_triggers(self: &Rc<Self>) {
        let global = js_sys::global();
        if let Ok(window) = global.clone().dyn_into::<web_sys::Window>() {
            self.listen_dom(window.clone().into(), "online", |rt| {
                let fx = rt.engine.borrow_mut().set_online(true, clock::now());
                rt.run_in_background(fx, None);
            });
            self.listen_dom(window.clone().into(), "offline", |rt| {
                let fx = rt.engine.borrow_mut().set_online(false, clock::now());
                rt.run_in_background(fx, None);
            });
            if let Some(document) = window.document() {
                let doc = document.clone();
                self.listen_dom(document.into(), "visibilitychange", move |rt| {
                    if rt.auto_drain && doc.visibility_state() == web_sys::VisibilityState::Visible
                    {
                        rt.flush_confirmations();
                        let fx = rt.engine.borrow_mut().drain(clock::now());
                        rt.run_in_background(fx, None);
                    }
                });
            }
        }
    }

    fn listen_dom(
        self: &Rc<Self>,
        target: web_sys::EventTarget,
        event: &'static str,
        handler: impl Fn(&Rc<Runtime>) + 'static,
    ) {
        let this: Weak<Runtime> = Rc::downgrade(self);
        let closure = Closure::<dyn FnMut()>::new(move || {
            if let Some(rt) = this.upgrade() {
                if rt.check_usable().is_ok() {
                    handler(&rt);
                }
            }
        });
        if target
            .add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())
            .is_ok()
        {
            self.dom.borrow_mut().push(DomListener {
                target,
                event,
                _closure: closure,
            });
        }
    }

    // ------------------------------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------------------------------

    fn status_json(&self) -> Value {
        let status = self.engine.borrow().status();
        let fatal = self.fatal.borrow();
        let fatal = fatal.as_ref().map(|e| (e.code(), e.to_string()));
        events::status_json(&status, fatal.as_ref().map(|(c, m)| (*c, m.as_str())))
    }

    /// Storage that can no longer be used at all (another tab upgraded the schema) stops the outbox and
    /// shows in the status as `error`; other failures are reported to the caller that hit them.
    fn note_storage_error(&self, error: &Error) {
        if matches!(error, Error::Store(StoreError::UpgradeBlocked))
            && self.fatal.borrow().is_none()
        {
            *self.fatal.borrow_mut() = Some(error.clone());
            let status = self.engine.borrow().status();
            self.emit(&Event::StatusChanged { status });
        } else if !matches!(error, Error::Store(StoreError::UpgradeBlocked)) {
            report_error(&error.to_js().into());
        }
    }

    fn check_open(&self) -> Result<()> {
        crate::panic_guard::check()?;
        if self.closed.get() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        self.check_open()?;
        match &*self.fatal.borrow() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn parse_op(&self, input: &JsValue) -> Result<NewOp> {
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

impl Drop for Runtime {
    fn drop(&mut self) {
        // An Outbox garbage-collected without close(): its DOM listeners must not outlive their closures.
        self.remove_dom_listeners();
    }
}

fn invalid_op(message: impl Into<String>) -> Error {
    Error::InvalidOp(message.into())
}

fn parse_id(id: &str) -> Result<OpId> {
    id.parse()
        .map_err(|_| Error::InvalidOp(format!("{id:?} is not an op id")))
}

/// The confirmed-doc record an ack writes: `{ collection, key, version, doc, deleted }`.
fn confirmed_doc_write(
    op: &outbox_core::SendOp,
    version: &Option<String>,
    doc: &Option<Value>,
) -> Write {
    let deleted = op.kind == OpKind::Delete;
    let record = json!({
        "collection": op.collection,
        "key": op.key,
        "version": version,
        "doc": if deleted { Value::Null } else { doc.clone().unwrap_or(Value::Null) },
        "deleted": deleted,
    });
    Write::PutDoc {
        collection: op.collection.to_string(),
        key: op.key.to_string(),
        record: JsValue::from_str(&record.to_string()),
    }
}

fn decode_records(stored: Vec<JsValue>) -> Result<Vec<OpRecord>> {
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

fn navigator_online() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .ok()
        .and_then(|n| js_sys::Reflect::get(&n, &"onLine".into()).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

/// Surfaces an error in the console without throwing it at the caller (`reportError`).
fn report_error(error: &JsValue) {
    let global = js_sys::global();
    if let Ok(report) = js_sys::Reflect::get(&global, &"reportError".into()) {
        if let Some(report) = report.dyn_ref::<Function>() {
            let _ = report.call1(&JsValue::UNDEFINED, error);
        }
    }
}
