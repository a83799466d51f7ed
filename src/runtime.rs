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
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use gloo_timers::callback::Interval;
use outbox_core::{
    Batch, ConfirmedDoc, ConflictResolution, Effect, Engine, Event, NewOp, OpId, OpKind, OpRecord,
    OpState,
};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::clock;
use crate::convert;
use crate::error::{Error, Result};
use crate::events;
use crate::options::Options;
use crate::pull::{parse_page, Page, Pull, CURSOR};
use crate::store::{GroupCommit, IdbStore, StoreError, Write};
use crate::transport::{SendOutcome, Transport};
use crate::watchers::{Notify, Watchers};

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
    watchers: Watchers,
    /// The app's custom-op functions by name; the engine's mutator reads them.
    mutations: Rc<RefCell<HashMap<String, Function>>>,
    /// Conflict resolvers by collection.
    resolvers: HashMap<String, Function>,
    pull: Pull,
}

impl Runtime {
    /// Opens the store, restores the queue from it, and starts the triggers.
    pub async fn open(options: Options) -> Result<Rc<Runtime>> {
        let store = Rc::new(IdbStore::open(&options.name, options.durability).await?);
        let records = decode_records(store.load_ops().await?)?;
        let docs = decode_docs(store.load_docs().await?)?;
        let cursor = store.get_meta(CURSOR).await?.and_then(|c| c.as_string());
        let mut engine =
            Engine::restore_with_docs(options.engine.clone(), clock::random_seed(), records, docs)?;
        let mutations: Rc<RefCell<HashMap<String, Function>>> = Rc::default();
        engine.set_mutator(mutator(Rc::clone(&mutations)));
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
            watchers: Watchers::default(),
            mutations,
            resolvers: options.resolvers,
            pull: Pull::new(options.pull, cursor),
        });
        runtime.install_triggers();
        runtime.start_periodic_pull();
        let weak = Rc::downgrade(&runtime);
        runtime.store().on_upgrade_blocked(move || {
            if let Some(runtime) = weak.upgrade() {
                runtime.note_storage_error(&Error::Store(StoreError::UpgradeBlocked));
            }
        });
        if options.paused {
            // Before anything could be sent: an app that opens "offline" must not leak the restored queue.
            let fx = runtime.engine.borrow_mut().pause(clock::now());
            runtime.run_in_background(fx);
        }
        if !navigator_online() {
            let fx = runtime.engine.borrow_mut().set_online(false, clock::now());
            runtime.run_in_background(fx);
        }
        if runtime.auto_drain {
            let fx = runtime.engine.borrow_mut().drain(clock::now());
            runtime.run_in_background(fx);
        }
        Ok(runtime)
    }

    // ------------------------------------------------------------------------------------------
    // Commands
    // ------------------------------------------------------------------------------------------

    /// Validates and enqueues one op. The view changes (and watchers fire) before this returns; the
    /// returned future resolves once the op is durable, or rolls the change back if storing it failed.
    pub fn enqueue(
        self: &Rc<Self>,
        input: JsValue,
    ) -> Result<impl std::future::Future<Output = Result<JsValue>> + 'static> {
        self.check_usable()?;
        let op = self.parse_op(&input)?;
        let now = clock::now();
        let (id, fx) = self.engine_mut()?.enqueue(op, now)?;
        let idempotency_key = self
            .engine
            .borrow()
            .op(id)
            .map(|r| r.idempotency_key.to_string())
            .unwrap_or_default();
        let commit = self.run(fx);
        let this = Rc::clone(self);
        Ok(async move {
            match commit.await {
                Ok(()) => {
                    this.queue_confirmation(id);
                    Ok(convert::to_js(&json!({
                        "id": id.to_string(),
                        "idempotencyKey": idempotency_key,
                    })))
                }
                Err(error) => {
                    // Nothing was written (the group's transaction rolled back whole): take the op back
                    // out, which also rolls the view back and fires the watchers again.
                    let fx = this
                        .engine
                        .borrow_mut()
                        .abandon_unstored(&[id], clock::now());
                    this.run_in_background(fx);
                    let error = Error::from(error);
                    this.note_storage_error(&error);
                    Err(error)
                }
            }
        })
    }

    /// Sends everything sendable now and resolves once nothing is in flight.
    pub async fn drain(self: &Rc<Self>) -> Result<JsValue> {
        self.check_usable()?;
        let start = self.totals.get();
        self.flush_confirmations();
        let fx = self.engine.borrow_mut().drain(clock::now());
        self.run_in_background(fx);
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
        self.run(fx).await.map_err(Error::from)
    }

    /// Retries every failed and conflicted op.
    pub async fn retry_all(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        let fx = self.engine.borrow_mut().retry_all(clock::now());
        self.run(fx).await.map_err(Error::from)
    }

    /// Removes an op from the outbox for good. Resolves once the removal is durable.
    pub async fn discard(self: &Rc<Self>, id: &str) -> Result<()> {
        self.check_usable()?;
        let id = parse_id(id)?;
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
        self.pull.timer.borrow_mut().take();
        self.listeners.borrow_mut().clear();
        self.watchers.clear();
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

    // ------------------------------------------------------------------------------------------
    // The optimistic view
    // ------------------------------------------------------------------------------------------

    /// The optimistic document (`undefined` when it does not exist).
    pub fn get(&self, collection: &str, key: &str) -> Result<JsValue> {
        self.check_open()?;
        let engine = self.engine_ref()?;
        Ok(engine
            .view_item(collection, key)
            .and_then(|item| item.value)
            .map_or(JsValue::UNDEFINED, convert::to_js))
    }

    /// The collection's documents: `[{ key, value, version, pending }]`, ordered by key.
    pub fn list(&self, collection: &str) -> Result<JsValue> {
        self.check_open()?;
        let engine = self.engine_ref()?;
        let items: Vec<Value> = engine
            .view_list(collection)
            .map(|item| {
                json!({
                    "key": item.key,
                    "value": item.value,
                    "version": item.version,
                    "pending": item.pending,
                })
            })
            .collect();
        Ok(convert::to_js(&Value::Array(items)))
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
            let version = match doc.get("version") {
                Some(Value::String(v)) => v.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(invalid(format!(
                        "docs[{i}].version is required: it decides which copy is newer"
                    )))
                }
            };
            let deleted = doc.get("deleted").and_then(Value::as_bool).unwrap_or(false);
            confirmed.push(ConfirmedDoc {
                collection: collection.clone(),
                key: key.to_owned(),
                version: Some(version),
                doc: Arc::new(match doc.get("value") {
                    Some(value) if !deleted => value.clone(),
                    _ => Value::Null,
                }),
                deleted,
            });
        }
        let fx = self.engine_mut()?.ingest(confirmed, clock::now());
        self.run(fx).await.map_err(Error::from)
    }

    /// Fetches server changes since the cursor, page by page, and applies the newer ones.
    pub async fn pull(self: &Rc<Self>) -> Result<JsValue> {
        self.check_usable()?;
        if self.pull.running.replace(true) {
            return Ok(convert::to_js(&json!({ "changes": 0, "skipped": "busy" })));
        }
        let result = self.pull_pages().await;
        self.pull.running.set(false);
        match &result {
            Ok(_) => self.pull.succeeded(),
            Err(_) => self.pull.failed(clock::now()),
        }
        result
    }

    async fn pull_pages(self: &Rc<Self>) -> Result<JsValue> {
        let mut changes = 0usize;
        loop {
            if !self.engine_ref()?.can_send() {
                let status = self.engine_ref()?.status();
                let reason = if !status.online {
                    "offline"
                } else if status.blocked_until.is_some() {
                    "blocked"
                } else {
                    "paused"
                };
                return Ok(convert::to_js(&json!({
                    "changes": changes,
                    "cursor": *self.pull.cursor.borrow(),
                    "skipped": reason,
                })));
            }
            let since = self.pull.cursor.borrow().clone();
            let page = self.fetch_page(since.as_deref()).await?;
            let n = page.docs.len();
            let fx = self.engine_mut()?.ingest(page.docs, clock::now());
            // The documents and the cursor are submitted in the same task: one transaction, so a crash
            // never leaves a cursor that skips changes we did not store.
            let commit = self.run(fx);
            let cursor_write = page.cursor.as_ref().map(|c| {
                self.group.submit(vec![Write::PutMeta {
                    key: CURSOR.to_owned(),
                    value: JsValue::from_str(c),
                }])
            });
            commit.await?;
            if let Some(write) = cursor_write {
                write.await?;
            }
            if page.cursor.is_some() {
                *self.pull.cursor.borrow_mut() = page.cursor;
            }
            changes += n;
            if !page.has_more || n == 0 {
                break;
            }
        }
        Ok(convert::to_js(&json!({
            "changes": changes,
            "cursor": *self.pull.cursor.borrow(),
        })))
    }

    async fn fetch_page(self: &Rc<Self>, since: Option<&str>) -> Result<Page> {
        if let Some(source) = &self.pull.options.source {
            let cursor = since.map_or(JsValue::NULL, JsValue::from_str);
            let page = crate::transport::call_async(source, &cursor)
                .await
                .map_err(|e| {
                    Error::PullFailed(format!(
                        "options.pull.source threw: {}",
                        convert::message(&e)
                    ))
                })?;
            let page = convert::from_js(&page, usize::MAX).map_err(|_| {
                Error::PullFailed("options.pull.source must resolve to JSON".into())
            })?;
            return parse_page(&page).map_err(Error::PullFailed);
        }
        let Transport::Fetch(fetch) = &self.transport else {
            return Err(Error::InvalidConfig(
                "pull() needs options.endpoint or options.pull.source".into(),
            ));
        };
        let response = fetch
            .pull(since, self.pull.options.limit)
            .await
            .map_err(Error::PullFailed)?;
        let fx = self
            .engine_mut()?
            .observe(&response, clock::now(), clock::wall_now());
        self.run_in_background(fx);
        if response.status != 200 {
            return Err(Error::PullFailed(format!(
                "the server answered HTTP {}",
                response.status
            )));
        }
        let body = response
            .body
            .ok_or_else(|| Error::PullFailed("the pull response is not JSON".into()))?;
        parse_page(&body).map_err(Error::PullFailed)
    }

    fn start_periodic_pull(self: &Rc<Self>) {
        let Some(interval) = self.pull.options.interval_ms else {
            return;
        };
        let this = Rc::downgrade(self);
        let timer = Interval::new(interval, move || {
            if let Some(this) = this.upgrade() {
                this.pull_in_background();
            }
        });
        *self.pull.timer.borrow_mut() = Some(timer);
    }

    /// A periodic or on-focus pull: skipped while one runs or while backing off; errors only back off.
    fn pull_in_background(self: &Rc<Self>) {
        if self.check_usable().is_err()
            || self.pull.running.get()
            || clock::now() < self.pull.not_before.get()
        {
            return;
        }
        let this = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move {
            let _ = this.pull().await;
        });
    }

    /// Settles a held conflict: keep the server's version, resend the local one, or send a merge.
    pub async fn resolve(self: &Rc<Self>, id: &str, resolution: JsValue) -> Result<()> {
        self.check_usable()?;
        let id = parse_id(id)?;
        let choice = js_sys::Reflect::get(&resolution, &"use".into())
            .ok()
            .and_then(|v| v.as_string());
        let (payload, server_version, state) = {
            let engine = self.engine_ref()?;
            let record = engine.op(id).ok_or(outbox_core::CoreError::UnknownOp(id))?;
            (
                record.payload.clone(),
                record.server_version.clone(),
                record.state,
            )
        };
        if state != OpState::Conflict {
            return Err(outbox_core::CoreError::WrongState { id, state }.into());
        }
        let now = clock::now();
        let fx = match choice.as_deref() {
            Some("server") => self.engine_mut()?.discard(id, now)?,
            Some("local") => {
                let payload = Value::clone(&payload);
                self.engine_mut()?
                    .resolve(id, payload, server_version, now)?
            }
            Some("merged") => {
                let value = js_sys::Reflect::get(&resolution, &"value".into())
                    .unwrap_or(JsValue::UNDEFINED);
                let value = convert::from_js(&value, self.max_op_bytes).map_err(|_| {
                    Error::InvalidOp("resolution.value must be the merged document (JSON)".into())
                })?;
                self.engine_mut()?.resolve(id, value, server_version, now)?
            }
            _ => {
                return Err(Error::InvalidOp(
                    "resolution.use must be \"server\", \"local\" or \"merged\"".into(),
                ))
            }
        };
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

    fn notify_watchers(&self, changed: &BTreeSet<(Arc<str>, Arc<str>)>) {
        for notify in self.watchers.due(changed) {
            let (callback, arg) = match notify {
                Notify::Collection(f, collection) => (f, self.list(&collection)),
                Notify::Doc(f, collection, key) => (f, self.get(&collection, &key)),
            };
            if let Ok(arg) = arg {
                if let Err(error) = callback.call1(&JsValue::UNDEFINED, &arg) {
                    report_error(&error);
                }
            }
        }
    }

    /// A conflict held for an app resolver: ask it, then apply its answer.
    fn ask_resolver(self: &Rc<Self>, event: &Event) {
        let Event::Conflict {
            id,
            resolution: ConflictResolution::Held,
            server_doc,
            ..
        } = event
        else {
            return;
        };
        let Some(record) = self.engine.borrow().op(*id).cloned() else {
            return;
        };
        let Some(resolver) = self.resolvers.get(&*record.collection).cloned() else {
            return;
        };
        let local = convert::to_js(&record.payload);
        let server = server_doc.as_ref().map_or(JsValue::NULL, convert::to_js);
        let op = convert::to_js(&crate::transport::snapshot_json(&record));
        let (this, id) = (Rc::clone(self), id.to_string());
        wasm_bindgen_futures::spawn_local(async move {
            let answer = match resolver.call3(&JsValue::UNDEFINED, &local, &server, &op) {
                Ok(answer) => {
                    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&answer)).await
                }
                Err(e) => Err(e),
            };
            let result = match answer {
                Ok(resolution) => this.resolve(&id, resolution).await,
                Err(e) => Err(Error::InvalidOp(format!(
                    "the conflict resolver threw: {}",
                    convert::message(&e)
                ))),
            };
            // The op stays held (visible in conflicts()) when the resolver fails.
            if let Err(error) = result {
                report_error(&error.to_js().into());
            }
        });
    }

    fn engine_ref(&self) -> Result<std::cell::Ref<'_, Engine>> {
        self.engine.try_borrow().map_err(|_| Error::Reentrant)
    }

    fn engine_mut(&self) -> Result<std::cell::RefMut<'_, Engine>> {
        self.engine.try_borrow_mut().map_err(|_| Error::Reentrant)
    }

    /// The store, for test hooks.
    pub fn store(&self) -> &Rc<IdbStore> {
        self.group.store()
    }

    // ------------------------------------------------------------------------------------------
    // Running effects
    // ------------------------------------------------------------------------------------------

    /// Runs effects; the returned future resolves when their storage writes are durable.
    fn run(self: &Rc<Self>, effects: Vec<Effect>) -> Commit {
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
    fn run_in_background(self: &Rc<Self>, effects: Vec<Effect>) {
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
        self.run_in_background(fx);
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
                rt.run_in_background(fx);
            });
            self.listen_dom(window.clone().into(), "offline", |rt| {
                let fx = rt.engine.borrow_mut().set_online(false, clock::now());
                rt.run_in_background(fx);
            });
            if let Some(document) = window.document() {
                let doc = document.clone();
                self.listen_dom(document.into(), "visibilitychange", move |rt| {
                    if doc.visibility_state() != web_sys::VisibilityState::Visible {
                        return;
                    }
                    if rt.pull.options.on_focus {
                        rt.pull_in_background();
                    }
                    if rt.auto_drain {
                        rt.flush_confirmations();
                        let fx = rt.engine.borrow_mut().drain(clock::now());
                        rt.run_in_background(fx);
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

fn decode_docs(stored: Vec<JsValue>) -> Result<Vec<ConfirmedDoc>> {
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

/// The engine's custom-op function: looks the op's name up among the app's registered mutations and
/// calls it with `(current, value)`. No function, a throw, or `undefined` leave the document as it is.
fn mutator(mutations: Rc<RefCell<HashMap<String, Function>>>) -> Box<outbox_core::view::MutatorFn> {
    Box::new(move |name, current, payload| {
        let apply = mutations.borrow().get(name).cloned()?;
        let current = current.map_or(JsValue::UNDEFINED, convert::to_js);
        match apply.call2(&JsValue::UNDEFINED, &current, &convert::to_js(payload)) {
            Ok(next) if next.is_undefined() => None,
            Ok(next) => convert::from_js(&next, usize::MAX).ok(),
            Err(error) => {
                report_error(&error);
                None
            }
        }
    })
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
