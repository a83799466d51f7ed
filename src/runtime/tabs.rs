//! Many tabs, one sender: the runtime's side of the leader election.
//!
//! The election itself (Web Locks) and the messages between tabs (`BroadcastChannel`) live in the
//! package's `tabs.js`; this module is what a tab does in each role, with IndexedDB as the truth:
//! - **leader**: sends and pulls; after each commit it tells the other tabs (`post`), forwards its
//!   events and status, and adopts the ops other tabs committed (from the records in their messages,
//!   and by a scan of the store now and then, for a tab that died between its commit and its message);
//! - **follower**: its engine is passive (it never sends and writes only its own enqueues); it shows
//!   the ops other tabs commit from their messages at once, and after a commit of the leader's that
//!   changed stored state it rebuilds its engine from the store (`tabs.js` spaces these out), so its
//!   view, `failed()` and `conflicts()` are the stored truth; it shows the leader's status;
//! - **uncoordinated**: no Web Locks (or no `BroadcastChannel`): every tab sends on its own, as one
//!   tab always did; the server's idempotency keeps each op's effect single.
//!
//! A rebuild may miss this tab's own latest enqueues (their commit had not landed when the read began,
//! or they were made while it ran): the new engine takes those over from the old one, with their
//! place and durability (`Engine::carry_over`).

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use js_sys::Function;
use outbox_core::{Effect, Engine, Event, OpId, OpRecord};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use super::{report_error, view::mutator, Runtime};
use crate::clock;
use crate::convert;
use crate::error::Result;
use crate::events;
use crate::store::Write;
use crate::watchers::Changed;

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

/// How long a tab remembers the ops it deleted (ms): far longer than a commit takes.
const DELETED_MEMORY_MS: u64 = 10 * 60_000;

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
    /// Whether the leader last said the outbox is paused.
    leader_paused: Cell<Option<bool>>,
    /// While a store read for a rebuild runs: the ops this tab enqueues meanwhile.
    pub(super) enqueued_during_read: RefCell<Option<Vec<OpId>>>,
    /// The ops this tab deleted lately (acked, discarded), with when: a read of the store may still
    /// find one whose delete is not committed yet, and it must not be adopted back (and sent again).
    deleted: RefCell<VecDeque<(u64, OpId)>>,
    deleted_ids: RefCell<HashSet<OpId>>,
}

impl Tabs {
    pub(super) fn new(role: Role) -> Tabs {
        Tabs {
            role: Cell::new(role),
            post: RefCell::new(None),
            leader_status: RefCell::new(None),
            leader_paused: Cell::new(None),
            enqueued_during_read: RefCell::new(None),
            deleted: RefCell::new(VecDeque::new()),
            deleted_ids: RefCell::new(HashSet::new()),
        }
    }

    /// Notes the deletes among effects about to run (see `deleted`), and forgets the old ones: a delete
    /// commits within moments, and an op id never comes back.
    pub(super) fn note_effects(&self, effects: &[Effect]) {
        // Every engine call passes here: nothing to do (not even reading the clock) without a delete,
        // or for a tab that reads no other tab's ops.
        if self.role.get() == Role::Uncoordinated
            || !effects.iter().any(|e| matches!(e, Effect::Delete(_)))
        {
            return;
        }
        let now = clock::now();
        let mut deleted = self.deleted.borrow_mut();
        let mut ids = self.deleted_ids.borrow_mut();
        for effect in effects {
            if let Effect::Delete(id) = effect {
                deleted.push_back((now, *id));
                ids.insert(*id);
            }
        }
        while let Some((at, id)) = deleted.front().copied() {
            if now.saturating_sub(at) < DELETED_MEMORY_MS {
                break;
            }
            deleted.pop_front();
            ids.remove(&id);
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
    /// Sets the function that posts to the other tabs (`tabs.js`). A leader that has not heard of
    /// another tab yet has none: it builds no messages (for a lone tab, the structured clone of every
    /// event and commit was an eighth of a drain's time), and `tabs.js` connects it at the first message.
    pub fn tab_connect(&self, post: Function) {
        *self.tabs.post.borrow_mut() = Some(post);
    }

    /// Whether another tab may hear this one.
    fn posting(&self) -> bool {
        self.tabs.post.borrow().is_some()
    }

    fn post(&self, message: Value) {
        let post = self.tabs.post.borrow().clone();
        if let Some(post) = post {
            if let Err(error) = post.call1(&JsValue::UNDEFINED, &convert::to_js(&message)) {
                report_error(&error);
            }
        }
    }

    /// After each commit, the other tabs hear of it: the records of ops stored for the first time go
    /// in the message (the leader adopts them, followers show them at once, without reading the store),
    /// and `changed` says the commit also changed what was stored before (a follower re-reads the store).
    /// `writes` are the commit's writes; the first `ops` of them are the engine's, in the group's order.
    pub(super) fn tab_committed(self: &Rc<Self>, writes: &[Write], ops: usize, stored: &[OpId]) {
        if self.tabs.role.get() == Role::Uncoordinated || !self.posting() {
            return;
        }
        let new: HashSet<String> = stored.iter().map(|id| id.to_string()).collect();
        let mut records = Vec::new();
        let mut changed = false;
        for write in &writes[..ops.min(writes.len())] {
            match write {
                Write::PutOp { id, record } if new.contains(id) => {
                    records.extend(record.as_string());
                }
                Write::PutMeta { .. } | Write::DeleteMeta { .. } => {}
                _ => changed = true,
            }
        }
        if records.is_empty() && !changed {
            return; // a clock mark, the pull cursor: nothing another tab shows
        }
        // For each new op, the ops before it in its lane here: the leader must know them first.
        let after: Vec<String> = {
            let engine = self.engine.borrow();
            let mut after = Vec::new();
            for id in stored {
                let Some(record) = engine.op(*id) else {
                    continue;
                };
                let lane = engine.ops_for(&record.collection, &record.key);
                let at = lane.iter().position(|r| r.id == *id).unwrap_or(0);
                after.extend(lane[..at].iter().map(|r| r.id));
            }
            outbox_core::order::sort_by_key(&mut after, |id| (0, 0, id.sort_key()));
            after.dedup();
            after.iter().map(ToString::to_string).collect()
        };
        self.post(
            json!({ "type": "commit", "records": records, "after": after, "changed": changed }),
        );
    }

    /// A leader's event, told to the other tabs too.
    pub(super) fn tab_forward(&self, event: &Event) {
        if self.tabs.role.get() != Role::Leader || !self.posting() {
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
        // Not while a new leader still has its follower's engine: its status is not the outbox's yet.
        if self.tabs.role.get() == Role::Leader
            && self.posting()
            && !self.engine.borrow().is_passive()
        {
            // The pause travels on its own: the state can hide it (`stalled` ranks above `paused`).
            let paused = self.engine.borrow().is_paused();
            self.post(json!({ "type": "status", "status": self.status_json(), "paused": paused }));
        }
    }

    /// A follower hears the leader's status: it shows it from now on, and keeps whether the outbox
    /// is paused, for when it leads itself.
    pub fn tab_leader_status(&self, status: JsValue, paused: bool) {
        let Ok(status) = convert::from_js(&status, usize::MAX) else {
            return;
        };
        self.tabs.leader_paused.set(Some(paused));
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

    /// A service worker's `sync` event: the network works again; backing-off ops go at once.
    pub fn reconnected(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        let fx = self.engine_mut()?.reconnected(clock::now());
        self.run_in_background(fx);
        Ok(())
    }

    /// A follower rebuilds its engine from the store (after another tab committed).
    pub async fn tab_refresh(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        if self.tabs.role.get() != Role::Follower {
            return Ok(());
        }
        let paused = self.engine.borrow().is_paused();
        self.rebuild(true, paused).await
    }

    /// This tab won the election: it rebuilds its engine from the store as the sender (ops the last
    /// leader left in flight go again under the same keys) and starts sending and pulling.
    pub async fn tab_promote(self: &Rc<Self>) -> Result<()> {
        self.check_usable()?;
        if self.tabs.role.get() == Role::Leader {
            return Ok(());
        }
        // The pause is the outbox's, as the last leader said it (else as this tab had it).
        let paused =
            (self.tabs.leader_paused.get()).unwrap_or_else(|| self.engine.borrow().is_paused());
        self.tabs.role.set(Role::Leader);
        self.rebuild(false, paused).await?;
        if self.auto_drain {
            let fx = self.engine.borrow_mut().drain(clock::now());
            self.run_in_background(fx);
        }
        self.pull.reload(&self.store).await;
        self.start_periodic_pull();
        // The last leader may have died between a commit and its message: followers read the store.
        self.post(json!({ "type": "commit", "records": [], "changed": true }));
        self.tab_post_status();
        Ok(())
    }

    /// Another tab stored these op records (JSON, from its commit message): a follower shows them at
    /// once, without reading the store. The leader adopts them to send them, together with every other
    /// op in the store it does not know: the tab that posted may have seen (and made its op on top of)
    /// an op whose own tab died before it could post it, and that op must not be sent after this one.
    /// With no records, this is the leader's periodic look for such ops.
    pub async fn tab_adopt(
        self: &Rc<Self>,
        records: Vec<String>,
        after: Option<Vec<String>>,
    ) -> Result<()> {
        self.check_usable()?;
        let role = self.tabs.role.get();
        if role == Role::Uncoordinated || (role == Role::Follower && records.is_empty()) {
            return Ok(());
        }
        let mut records: Vec<OpRecord> = records
            .iter()
            .filter_map(|text| serde_json::from_str::<OpRecord>(text).ok())
            .collect();
        // The store is read when asked (`None`: the periodic look), or when the posting tab put an op
        // behind one this tab does not know: an op whose own tab died before it could post it.
        let must_read = after.is_none_or(|after| {
            let engine = self.engine.borrow();
            let deleted = self.tabs.deleted_ids.borrow();
            let named: HashSet<OpId> = records.iter().map(|r| r.id).collect();
            after
                .iter()
                .filter_map(|id| id.parse::<OpId>().ok())
                .any(|id| engine.op(id).is_none() && !deleted.contains(&id) && !named.contains(&id))
        });
        if role == Role::Leader && must_read {
            let keys = self.store.load_op_keys().await?;
            let unknown: Vec<String> = {
                let engine = self.engine.borrow();
                let deleted = self.tabs.deleted_ids.borrow();
                let named: HashSet<OpId> = records.iter().map(|r| r.id).collect();
                keys.into_iter()
                    .filter(|key| {
                        key.parse::<OpId>().is_ok_and(|id| {
                            engine.op(id).is_none()
                                && !deleted.contains(&id)
                                && !named.contains(&id)
                        })
                    })
                    .collect()
            };
            if !unknown.is_empty() {
                let entries = self.store.load_op_entries_by_id(&unknown).await?;
                records.extend(super::input::decode_records(entries).0);
            }
        }
        // Awaited reads above: what this tab knows or deleted meanwhile is left out now.
        let records: Vec<OpRecord> = {
            let engine = self.engine.borrow();
            let deleted = self.tabs.deleted_ids.borrow();
            records
                .into_iter()
                .filter(|r| engine.op(r.id).is_none() && !deleted.contains(&r.id))
                .collect()
        };
        if records.is_empty() || self.tabs.role.get() != role {
            return Ok(());
        }
        if role == Role::Follower {
            let fx = self.engine_mut()?.adopt(records, clock::now())?;
            self.run_in_background(fx);
            return Ok(());
        }
        // The leader sends adopted ops as it sends its own: once confirmed, so that a burst forms full
        // batches and `autoDrain: false` holds them until the app drains.
        let ids: Vec<OpId> = records.iter().map(|r| r.id).collect();
        let fx = self
            .engine_mut()?
            .adopt_unconfirmed(records, clock::now())?;
        self.run_in_background(fx);
        for id in ids {
            self.queue_confirmation(id);
        }
        Ok(())
    }

    /// Replaces the engine with one restored from the store (`passive`: a follower's), carrying over
    /// this tab's enqueues the read missed and the pause, and tells the watchers what changed.
    async fn rebuild(self: &Rc<Self>, passive: bool, paused: bool) -> Result<()> {
        // This tab's ops whose commit has not landed yet, and those it makes while the read runs.
        let mut missed: Vec<OpId> = self.unstored_enqueues();
        *self.tabs.enqueued_during_read.borrow_mut() = Some(Vec::new());
        let read =
            super::restore::restore_stored(&self.store, &self.config, clock::now(), &|_, _| {})
                .await;
        let during = self.tabs.enqueued_during_read.borrow_mut().take();
        let super::restore::Restored {
            mut engine,
            quarantined,
            history,
            ..
        } = read?;
        // From the same snapshot as the queue; taken whatever comes of the engine below, as a tab
        // promoted meanwhile must number its entries after the stored ones.
        self.reload_history(history);
        // Closed meanwhile, or promoted while a follower's re-read ran: that read is not wanted any more.
        let role = self.tabs.role.get();
        if self.closed.get() || passive != (role == Role::Follower) {
            return Ok(());
        }
        missed.extend(during.unwrap_or_default());
        let now = clock::now();
        engine.set_passive(passive);
        engine.set_mutator(mutator(Rc::clone(&self.mutations)));
        let mut fx = Vec::new();
        if paused {
            fx.extend(engine.pause(now));
        }
        fx.extend(engine.set_online(super::triggers::navigator_online(), now));
        let changed = {
            let old = self.engine.borrow();
            engine.carry_over(&old, &missed);
            changed_entities(&old, &engine, &self.watchers.collections())
        };
        *self.engine.borrow_mut() = engine;
        *self.quarantined.borrow_mut() = quarantined;
        self.notify_watchers(&changed);
        // The new engine's first effects (a leader's: the writes its restore decided) run as any do.
        self.run_in_background(fx);
        let status = self.engine.borrow().status();
        self.emit(&Event::StatusChanged { status });
        Ok(())
    }
}

/// The entities of `collections` whose view differs between two engines.
fn changed_entities(old: &Engine, new: &Engine, collections: &[String]) -> Changed {
    let mut changed = Vec::new();
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
                    changed.push((Arc::from(collection.as_str()), Arc::from(item.key)));
                }
                None => {
                    changed.push((Arc::from(collection.as_str()), Arc::from(item.key)));
                }
            }
        }
        if seen < before.len() {
            let now: HashSet<&str> = new.view_list(collection).map(|item| item.key).collect();
            for key in before.keys().filter(|k| !now.contains(*k)) {
                changed.push((Arc::from(collection.as_str()), Arc::from(*key)));
            }
        }
    }
    changed
}
