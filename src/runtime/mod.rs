//! The runtime: carries out the core's decisions in the browser, and does nothing else.
//!
//! Every engine call returns effects; `Runtime::run` carries them out through the core's `EffectQueue`:
//! storage writes go to ordered group commits, each send leaves (in its own task, whose reply goes back
//! into the engine) only once the writes before it are durable, wake-ups become timers, and events go to
//! the app's listeners. The engine is only borrowed for the length of one call, so a listener may call
//! back into the outbox.
//!
//! The concerns live in one module each, all of them `impl Runtime` blocks over the fields defined here:
//! - [`commands`]: the app's commands (enqueue, drain, retry, discard, pause, resume) and its listeners;
//! - [`effects`]: running the core's effects, in the order the core's `EffectQueue` decides;
//! - [`durable`]: committing the queue's write groups to IndexedDB and releasing what waits for them;
//! - [`view`]: reading and watching the optimistic view, ingesting documents, custom-op mutations;
//! - [`pull`]: pulling server changes, on demand and periodically;
//! - [`conflicts`]: settling held conflicts, by the app or its resolver;
//! - [`triggers`]: the DOM events that wake the engine (`online`, `offline`, `visibilitychange`);
//! - [`input`]: reading the app's ops and the stored records.

mod client_id;
mod commands;
mod conflicts;
mod durable;
mod effects;
mod history;
mod input;
mod pull;
mod quarantine;
mod restore;
mod tabs;
mod triggers;
mod validate;

pub use tabs::Role;
pub(crate) use validate::is_validator;
mod view;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::oneshot;
use gloo_timers::callback::Timeout;
use js_sys::Function;
use outbox_core::{Config, Engine, Event, OpId};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::by_name::ByName;
use crate::clock;
use crate::error::{Error, Result};
use crate::events;
use crate::options::Options;
use crate::pull::{Pull, CURSOR, HELD};
use crate::store::{IdbStore, StoreError};
use crate::transport::Transport;
use crate::watchers::Watchers;

use triggers::{navigator_online, DomListener};
use view::mutator;

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

/// One open outbox.
pub struct Runtime {
    engine: RefCell<Engine>,
    /// The engine's configuration, for the engines a tab rebuilds from the store.
    config: Config,
    /// This tab's role among the tabs of the outbox (`tabs.rs`).
    tabs: tabs::Tabs,
    store: Rc<IdbStore>,
    durable: durable::Durable,
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
    mutations: Rc<RefCell<ByName<Function>>>,
    /// Conflict resolvers by collection.
    resolvers: ByName<Function>,
    /// The app's validators by collection (a function or a Standard Schema).
    validators: ByName<JsValue>,
    pull: Pull,
    /// Stored records that could not be read (shown as failed ops until discarded).
    quarantined: RefCell<Vec<quarantine::Quarantined>>,
    /// The sync history and what `health()` derives from it.
    history: history::Recorder,
}

impl Runtime {
    /// Opens the store, restores the queue from it, and starts the triggers. A follower (`role`) keeps
    /// a passive engine: it sends and pulls nothing until `tab_promote`.
    pub async fn open(mut options: Options, role: Role) -> Result<Rc<Runtime>> {
        let store = Rc::new(IdbStore::open(&options.name, options.durability).await?);
        let on_status = options.on_status.take();
        let restore::Restored {
            mut engine,
            quarantined,
            meta,
            history,
        } = restore::restore_stored(
            &store,
            &options.engine,
            clock::now(),
            &|restoring, total| {
                if let Some(callback) = &on_status {
                    let mut status = events::status_json(&restoring.status(total), None);
                    status["online"] = navigator_online().into();
                    status["role"] = role.as_str().into();
                    call_app(callback, &crate::convert::to_js(&status));
                }
            },
        )
        .await?;
        let cursor = meta_value(&meta, CURSOR);
        let held = meta_value(&meta, HELD);
        let history = history::Recorder::open(history, &options);
        engine.set_passive(role == Role::Follower);
        let mutations: Rc<RefCell<ByName<Function>>> = Rc::default();
        engine.set_mutator(mutator(Rc::clone(&mutations)));
        if let crate::options::TransportOptions::Fetch(f) = &mut options.transport {
            if f.client_id.is_none() {
                let stored = meta_value(&meta, client_id::CLIENT_ID_META_KEY);
                f.client_id = client_id::stored_or_new(&store, stored, &mut engine).await?;
            }
        }
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
            config: options.engine.clone(),
            tabs: tabs::Tabs::new(role),
            store,
            durable: durable::Durable::new(),
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
            validators: options.validators,
            pull: Pull::new(options.pull, cursor, held.as_deref()),
            quarantined: RefCell::new(quarantined),
            history,
        });
        runtime.install_triggers();
        if role != Role::Follower {
            runtime.start_periodic_pull();
        }
        let weak = Rc::downgrade(&runtime);
        runtime.store().on_upgrade_blocked(move || {
            if let Some(runtime) = weak.upgrade() {
                runtime.storage_dead(StoreError::UpgradeBlocked);
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
        // The restored queue's sends carry `restore`; from now on the app's calls are `manual`.
        runtime.history.trigger.set(outbox_core::Trigger::Manual);
        if let Some(callback) = on_status {
            // Heard the restore; now the restored status, as it stands once the open has paused or
            // marked the outbox offline, and every change after it (as `subscribe` would).
            runtime.listen(None, callback.clone())?;
            runtime.call_with_current(&callback, runtime.status());
        }
        Ok(runtime)
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
        self.flush_history_now().await;
        self.store.close();
        Ok(())
    }

    fn engine_ref(&self) -> Result<std::cell::Ref<'_, Engine>> {
        self.engine.try_borrow().map_err(|_| Error::Reentrant)
    }

    fn engine_mut(&self) -> Result<std::cell::RefMut<'_, Engine>> {
        self.engine.try_borrow_mut().map_err(|_| Error::Reentrant)
    }

    /// The store, for test hooks.
    pub fn store(&self) -> &Rc<IdbStore> {
        &self.store
    }

    fn status_json(&self) -> Value {
        let mut status = self.engine.borrow().status();
        // Records set aside at open count as failed ops: the app sees them in failed().
        status.failed += self.quarantined_count();
        if status.state == outbox_core::SyncState::Idle && self.quarantined_count() > 0 {
            status.state = outbox_core::SyncState::Error;
        }
        let fatal = self.fatal.borrow();
        let fatal = fatal.as_ref().map(|e| (e.code(), e.to_string()));
        let own = events::status_json(&status, fatal.as_ref().map(|(c, m)| (*c, m.as_str())));
        self.tabs.status_json(own)
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
}

/// Every meta value by name, as read at open: one read for all of them.
type Meta = Vec<(String, String)>;

fn meta_value(meta: &Meta, key: &str) -> Option<String> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // An Outbox garbage-collected without close(): its DOM listeners must not outlive their closures.
        self.remove_dom_listeners();
    }
}

/// Calls an app callback with `arg`: one that throws must not break the outbox; its error still
/// surfaces in the console.
fn call_app(callback: &Function, arg: &JsValue) {
    if let Err(error) = callback.call1(&JsValue::UNDEFINED, arg) {
        report_error(&error);
    }
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
