//! Many tabs, one sender: the runtime's side of the leader election.
//!
//! The election itself (Web Locks) and the messages between tabs (`BroadcastChannel`) live in the
//! package's `tabs.js`; this module is what a tab does in each role, with IndexedDB as the truth:
//! - **leader**: sends and pulls; after each commit it tells the other tabs (`post`), forwards its
//!   events and status, and adopts the ops other tabs committed (by the ids they post, and by a scan
//!   of the store now and then, for a tab that died between its commit and its message);
//! - **follower**: its engine is passive (it never sends and writes only its own enqueues); after
//!   any other tab's commit it rebuilds its engine from the store, so its view, `failed()` and
//!   `conflicts()` are the stored truth, and it shows the leader's status;
//! - **uncoordinated**: no Web Locks (or no `BroadcastChannel`): every tab sends on its own, as one
//!   tab always did; the server's idempotency keeps each op's effect single.
//!
//! A rebuild reads the store only while this tab has no write of its own waiting or committing, and
//! throws the read away if the tab enqueued during it: its own ops must all be in what it reads.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use js_sys::Function;
use outbox_core::{Effect, Engine, Event, OpId};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use super::{load_stored, report_error, view::mutator, Runtime};
use crate::clock;
use crate::convert;
use crate::error::Result;
use crate::events;

/// What this tab does for its outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends and pulls for every tab.
    Leader,
    /// Enqueues and shows; the leader sends.
    Follower,
    /// No election is possible here: this tab sends on its own.
    Uncoordinated,
}

impl Role {
    /// The name the status and `tabs.js` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Uncoordinated => "uncoordinated",
        }
    }

    /// Reads the role `tabs.js` opens with (absent: uncoordinated, as a direct open always was).
    pub fn parse(name: Option<&str>) -> Role {
        match name {
            Some("leader") => Role::Leader,
            Some("follower") => Role::Follower,
            _ => Role::Uncoordinated,
        }
    }
}

/// Events a leader forwards to the other tabs: outcomes and sync milestones. The view is rebuilt by
/// each tab from the store, the status travels on its own, and `enqueued` is told by the tab that
/// enqueued.
fn forwarded(event: &Event) -> bool {
    !matches!(
        event,
        Event::ViewChanged { .. } | Event::StatusChanged { .. } | Event::Enqueued { .. }
    )
}

/// The tab state of one outbox.
pub(super) struct Tabs {
    pub(super) role: Cell<Role>,
    /// `tabs.js`'s function that posts a message to the other tabs.
    post: RefCell<Option<Function>>,
    /// The leader's last status, shown by a follower.
    leader_status: RefCell<Option<Value>>,
    /// Bumped by every enqueue: a store read that overlapped one is not a complete picture.
    pub(super) enqueues: Cell<u64>,
    /// A scan of the store is running: the ops deleted meanwhile must not be adopted back.
    scanning: Cell<bool>,
    deleted_while_scanning: RefCell<HashSet<OpId>>,
    /// A rebuild was asked for while this tab's own writes were on their way.
    refresh_wanted: Cell<bool>,
}

impl Tabs {
    pub(super) fn new(role: Role) -> Tabs {
        Tabs {
            role: Cell::new(role),
            post: RefCell::new(None),
            leader_status: RefCell::new(None),
            enqueues: Cell::new(0),
            scanning: Cell::new(false),
            deleted_while_scanning: RefCell::new(HashSet::new()),
            refresh_wanted: Cell::new(false),
        }
    }

    /// Notes the deletes among effects about to run, while a scan is reading the store.
    pub(super) fn note_effects(&self, effects: &[Effect]) {
        if !self.scanning.get() {
            return;
        }
        let mut deleted = self.deleted_while_scanning.borrow_mut();
        for effect in effects {
            if let Effect::Delete(id) = effect {
                deleted.insert(*id);
            }
        }
    }

    /// The status as this tab shows it: a follower shows the leader's.
    pub(super) fn status_json(&self, own: Value) -> Value {
        let role = self.role.get();
        let mut status = match (role, &*self.leader_status.borrow()) {
            (Role::Follower, Some(leader)) => leader.clone(),
            _ => own,
        };
        status["role"] = json!(role.as_str());
        status
    }
}

impl Runtime {
    /// Sets the function that posts to the other tabs (`tabs.js`).
    pub fn tab_connect(&self, post: Function) {
        *self.tabs.post.borrow_mut() = Some(post);
    }

    fn post(&self, message: Value) {
        let post = self.tabs.post.borrow().clone();
        if let Some(post) = post {
            if let Err(error) = post.call1(&JsValue::UNDEFINED, &convert::to_js(&message)) {
                report_error(&error);
            }
        }
    }

    /// After each commit: the other tabs re-read the store, and the leader adopts the ops in it.
    pub(super) fn tab_committed(self: &Rc<Self>, stored: &[OpId]) {
        if self.tabs.role.get() == Role::Uncoordinated {
            return;
        }
        let ids: Vec<String> = stored.iter().map(|id| id.to_string()).collect();
        self.post(json!({ "type": "commit", "ids": ids }));
        if self.tabs.refresh_wanted.get() && self.storage_idle() {
            let this = Rc::clone(self);
            wasm_bindgen_futures::spawn_local(async move {
                let _ = this.tab_refresh().await;
            });
        }
    }

    /// A leader's event, told to the other tabs too.
    pub(super) fn tab_forward(&self, event: &Event) {
        if self.tabs.role.get() != Role::Leader {
            return;
        }
        match event {
            Event::StatusChanged { .. } => self.tab_post_status(),
            _ if forwarded(event) => {
                self.post(json!({ "type": "event", "event": events::event_json(event) }))
            }
            _ => {}
        }
    }

    /// The leader's status, posted to the other tabs.
    pub fn tab_post_status(&self) {
        if self.tabs.role.get() == Role::Leader {
            self.post(json!({ "type": "status", "status": self.status_json() }));
        }
    }

    /// A follower hears the leader's status: it shows it from now on.
    pub fn tab_leader_status(&self, status: JsValue) {
        let Ok(status) = convert::from_js(&status, usize::MAX) else {
            return;
        };
        *self.tabs.leader_status.borrow_mut() = Some(status);
        let status = self.engine.borrow().status();
        self.emit(&Event::StatusChanged { status });
    }

    /// A follower hears one of the leader's events and tells its own listeners.
    pub fn tab_remote_event(&self, event: JsValue) {
        let name = js_sys::Reflect::get(&event, &"type".into())
            .ok()
            .and_then(|t| t.as_string());
        if let Some(name) = name {
            self.dispatch(&name, &event);
        }
    }

    /// No write of this tab's is waiting or committing.
    fn storage_idle(&self) -> bool {
        self.durable.queue.borrow().is_idle()
    }

    /// A follower rebuilds its engine from the store (after another tab committed). Deferred while
    /// its own writes are on their way; a read that overlapped an enqueue is read again.
    pub async fn tab_refresh(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        if self.tabs.role.get() != Role::Follower {
            return Ok(());
        }
        self.rebuild(true).await
    }

    /// This tab won the election: it rebuilds its engine from the store as the sender (ops the last
    /// leader left in flight go again under the same keys) and starts sending and pulling.
    pub async fn tab_promote(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        if self.tabs.role.get() == Role::Leader {
            return Ok(());
        }
        // Wait for this tab's own writes: every op it made must be in the store it reads.
        for _ in 0..100 {
            if self.storage_idle() {
                break;
            }
            gloo_timers::future::TimeoutFuture::new(5).await;
        }
        let paused = self
            .tabs
            .leader_status
            .borrow()
            .as_ref()
            .map(|s| s["state"] == "paused");
        self.tabs.role.set(Role::Leader);
        self.rebuild(false).await?;
        let now = clock::now();
        let fx = {
            let mut engine = self.engine.borrow_mut();
            let mut fx = match paused {
                Some(true) => engine.pause(now),
                _ => Vec::new(),
            };
            fx.extend(engine.set_online(super::triggers::navigator_online(), now));
            if self.auto_drain {
                fx.extend(engine.drain(now));
            }
            fx
        };
        self.run_in_background(fx);
        self.pull.reload(&self.store).await;
        self.start_periodic_pull();
        self.tab_post_status();
        Ok(())
    }

    /// The leader adopts ops other tabs committed: `ids` from their message, or (`None`) every op in
    /// the store it does not know. A scan runs only while this tab has no write on its way, so no
    /// delete of its own is still uncommitted, and skips what it deleted while reading.
    pub async fn tab_adopt(self: &Rc<Self>, ids: Option<Vec<String>>) -> Result<()> {
        self.check_usable()?;
        if self.tabs.role.get() != Role::Leader {
            return Ok(());
        }
        let scan = ids.is_none();
        let entries = match ids {
            Some(ids) => self.store.load_op_entries_by_id(&ids).await,
            None if self.storage_idle() => {
                self.tabs.scanning.set(true);
                let entries = self.store.load_op_entries().await;
                self.tabs.scanning.set(false);
                entries
            }
            None => return Ok(()),
        }?;
        let deleted = std::mem::take(&mut *self.tabs.deleted_while_scanning.borrow_mut());
        let (records, _) = super::input::decode_records(entries);
        let records: Vec<_> = {
            let engine = self.engine.borrow();
            records
                .into_iter()
                .filter(|r| engine.op(r.id).is_none() && !(scan && deleted.contains(&r.id)))
                .collect()
        };
        if records.is_empty() || self.tabs.role.get() != Role::Leader {
            return Ok(());
        }
        let fx = self.engine_mut()?.adopt(records, clock::now())?;
        self.run_in_background(fx);
        Ok(())
    }

    /// Replaces the engine with one restored from the store (`passive`: a follower's), carrying over
    /// the pause and online state, and tells the watchers what changed in the view.
    async fn rebuild(self: &Rc<Self>, passive: bool) -> Result<()> {
        for _ in 0..5 {
            if !self.storage_idle() {
                self.tabs.refresh_wanted.set(true);
                return Ok(());
            }
            self.tabs.refresh_wanted.set(false);
            let enqueues = self.tabs.enqueues.get();
            let (stored, quarantined) = load_stored(&self.store).await?;
            if self.closed.get() {
                return Ok(());
            }
            if enqueues != self.tabs.enqueues.get() || !self.storage_idle() {
                continue;
            }
            let mut engine = Engine::restore_from(
                self.config.clone(),
                clock::randomness(),
                stored,
                clock::now(),
            )?;
            engine.set_passive(passive);
            engine.set_mutator(mutator(Rc::clone(&self.mutations)));
            let changed = {
                let old = self.engine.borrow();
                if old.is_paused() {
                    engine.pause(clock::now());
                }
                changed_entities(&old, &engine, &self.watchers.collections())
            };
            *self.engine.borrow_mut() = engine;
            *self.quarantined.borrow_mut() = quarantined;
            self.notify_watchers(&changed);
            let status = self.engine.borrow().status();
            self.emit(&Event::StatusChanged { status });
            return Ok(());
        }
        self.tabs.refresh_wanted.set(true);
        Ok(())
    }
}

/// The entities of `collections` whose view differs between two engines.
fn changed_entities(
    old: &Engine,
    new: &Engine,
    collections: &[String],
) -> BTreeSet<(Arc<str>, Arc<str>)> {
    let mut changed = BTreeSet::new();
    for collection in collections {
        let before: std::collections::HashMap<&str, _> = old
            .view_list(collection)
            .map(|item| (item.key, (item.value, item.version, item.pending)))
            .collect();
        let mut seen = 0;
        for item in new.view_list(collection) {
            match before.get(item.key) {
                Some(b) if *b == (item.value, item.version, item.pending) => seen += 1,
                Some(_) => {
                    seen += 1;
                    changed.insert((Arc::from(collection.as_str()), Arc::from(item.key)));
                }
                None => {
                    changed.insert((Arc::from(collection.as_str()), Arc::from(item.key)));
                }
            }
        }
        if seen < before.len() {
            let now: HashSet<&str> = new.view_list(collection).map(|item| item.key).collect();
            for key in before.keys().filter(|k| !now.contains(*k)) {
                changed.insert((Arc::from(collection.as_str()), Arc::from(*key)));
            }
        }
    }
    changed
}
