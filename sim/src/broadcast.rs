//! What tabs tell each other (BroadcastChannel), and what they do about it, as `pkg/tabs.js` and
//! `src/runtime/tabs.rs` do.
//!
//! After **every** successful group commit the committing tab posts `commit { records, after, changed
//! }`: `records` are the op records the group stored for the first time (its enqueues,
//! `Committed::stored`), exactly as stored; `after` names, for each of them, the op before it in its
//! lane in the posting tab's engine at that moment (none for the lane's first); `changed` says the
//! group wrote anything else (a put of an op already stored, a delete, a document): a group of clock
//! marks alone is neither. Messages between two live tabs arrive in order after 1–20 ms and are never
//! lost; a tab can die between its commit and its post.
//!
//! - A follower adopts `records` at once (`adopt`: it shows other tabs' enqueues without reading the
//!   store).
//! - The leader adopts them with `adopt_unconfirmed`: they become sendable at its debounced
//!   confirmation, as its own enqueues do. It reads the store first only when `after` names an op it
//!   does not know, did not delete in the last 10 minutes of its engine time, and that is not among the
//!   records: an op the posting tab showed whose own message never came (its tab died between commit
//!   and post) or has not come yet (messages from two tabs are not ordered); it then adopts every stored
//!   op it does not know with them (adopting only the named ones sent an op before one it was made
//!   after: seed 17, 5 tabs). Every 2 s it reads the store with no records (its scan, for a tab that
//!   died before posting).
//! - The leader posts its status after each change; a follower keeps the last one (promotion applies
//!   its pause). A follower that opens says `hello`, and the leader posts its status.
//! - A tab that leads from its open posts nothing (no commit, no status) until a message from another
//!   tab reaches it (`connect` in `tabs.js`); it then posts a commit that changed the store, so every
//!   follower re-reads it: what it committed before a new tab's `hello` reached it is read by that tab.
//!   Followers post from their open.
//!
//! Messages and the work they start are handled one at a time per tab, in order (`serially` in
//! `tabs.js`): see [`crate::rebuild`].

use std::collections::{HashSet, VecDeque};

use outbox_core::{OpId, OpRecord, Stored, Write};

use crate::lock::Role;
use crate::rebuild::{Answer, Task};
use crate::world::{Ev, World};

/// The longest a message takes between two tabs, ms.
pub const MESSAGE_DELAY_MS: u64 = 20;

/// How often the leader scans the whole store for ops nobody told it of, ms (`SCAN_INTERVAL_MS`).
const SCAN_INTERVAL_MS: u64 = 2_000;

/// How long a tab remembers the ops it deleted, engine ms (`DELETED_MEMORY_MS`).
const DELETED_MEMORY_MS: u64 = 10 * 60_000;

#[derive(Clone, Debug)]
pub enum Msg {
    /// A group commit of the sender: the records it stored for the first time, and whether it wrote
    /// anything else.
    Commit {
        records: Vec<OpRecord>,
        after: Vec<OpId>,
        changed: bool,
    },
    /// The leader's status: only whether it says `paused` matters here.
    Status { paused: bool },
    /// A follower opened and asks for the leader's status.
    Hello,
    /// The leader's answer to a command this tab forwarded.
    Reply(Answer),
}

/// The multi-tab state of one tab (what `tabs.js` and `Tabs` in `src/runtime/tabs.rs` hold).
#[derive(Debug, Default)]
pub struct TabSync {
    /// `serially`: the tab's messages and the work they start, one at a time, in order.
    pub tasks: VecDeque<Task>,
    pub task_running: bool,
    /// Ops this tab deleted, with when (engine time): kept 10 minutes.
    pub deleted: VecDeque<(u64, OpId)>,
    pub deleted_ids: HashSet<OpId>,
    /// The throttled refresh's timer is set (`refreshTimer`)...
    pub refresh_timer: bool,
    /// ...spaced by the last refresh's duration, ms (`lastRefreshMs`).
    pub last_refresh_ms: u64,
    /// Reads of the store for a rebuild on their way.
    pub rebuild_reads: u32,
    /// When this tab's latest read ends: a tab's reads end in the order they began.
    pub last_read_end: u64,
    /// While a rebuild's read runs: the ops this tab enqueues meanwhile (`enqueued_during_read`).
    pub enqueued_during_read: Option<Vec<OpId>>,
    /// The promotion started: the runtime's role is leader (before its rebuild).
    pub promote_started: bool,
    /// The promotion's engine, restored online, has not been told the tab's switch yet.
    pub online_untold: bool,
    /// Whether the last status the follower heard from the leader said `paused`.
    pub leader_paused: Option<bool>,
    /// The leader: whether the last status it posted said `paused`.
    pub posted_paused: Option<bool>,
    /// The last group this tab's writes joined, and how many engine calls wrote.
    pub last_group: u64,
    pub writing_calls: u64,
    /// The leader's answers to forwarded commands, each waiting for its group to be durable.
    pub answering: VecDeque<(u64, Answer)>,
    /// When the leader's scans started (they run on a grid of times from it).
    pub scan_origin: u64,
    /// The store's commit count at the last scan.
    pub scanned_commits: Option<u64>,
    /// The scan timer sleeps until the store changes.
    pub scan_asleep: bool,
    /// The tab posts to the others: a follower from its open, a leader once another tab spoke.
    pub connected: bool,
}

/// A read of the store on its way.
pub struct StoreRead {
    pub tab: usize,
    pub epoch: u64,
    pub purpose: ReadPurpose,
    pub stored: Stored,
    pub cursor: Option<String>,
}

pub enum ReadPurpose {
    /// A rebuild of the engine (see [`crate::rebuild`]).
    Rebuild(crate::rebuild::Rebuild),
    /// The leader's read of the stored ops it does not know; `records` came in the message (none:
    /// the scan).
    Adopt { records: Vec<OpRecord> },
}

impl World {
    /// After a successful commit of `tab`'s `writes`: the tab posts the records it stored for the
    /// first time and whether it changed anything else — unless it dies first.
    pub fn after_commit(&mut self, tab: usize, stored: &[OpId], writes: &[Write]) {
        if !self.multi() {
            return;
        }
        self.wake_scan();
        if !self.tabs[tab].sync.connected {
            return; // a lone leader: nobody to tell, and a tab that opens later reads the store
        }
        let new: HashSet<&OpId> = stored.iter().collect();
        let changed = writes.iter().any(|w| match w {
            Write::PutOp(record) => !new.contains(&record.id),
            Write::PutMeta { .. } | Write::DeleteMeta { .. } => false,
            Write::DeleteOp(_) | Write::PutDoc(_) => true,
        });
        if stored.is_empty() && !changed {
            return; // clock marks alone: the runtime posts nothing another tab would act on
        }
        // Exactly as stored: parsed back from the stored text.
        let records = stored
            .iter()
            .filter_map(|id| self.store.record(id))
            .collect();
        // For each new op, the ops before it in its lane here: the leader must know them first.
        let engine = self.tabs[tab].engine.as_ref().expect("alive");
        let mut after: Vec<OpId> = stored
            .iter()
            .filter_map(|id| {
                let record = engine.op(*id)?;
                let lane = engine.ops_for(&record.collection, &record.key);
                let at = lane.iter().position(|r| r.id == *id)?;
                Some(lane[..at].iter().map(|r| r.id).collect::<Vec<_>>())
            })
            .flatten()
            .collect();
        after.sort();
        after.dedup();
        // Crash point: the commit is durable, its message never leaves.
        self.crash_point(tab);
        let epoch = self.tabs[tab].epoch;
        self.in_transit += 1;
        let msg = Msg::Commit {
            records,
            after,
            changed,
        };
        self.at(0, Ev::Post { tab, epoch, msg });
    }

    /// `tab` posts `msg` to every other open tab.
    pub fn post(&mut self, from: usize, msg: Msg) {
        for to in 0..self.tabs.len() {
            if to != from && self.tabs[to].alive {
                self.send_message(from, to, msg.clone());
            }
        }
    }

    pub fn send_message(&mut self, from: usize, to: usize, msg: Msg) {
        self.stats.messages += 1;
        let earliest = self.time + self.rng.u64(1..MESSAGE_DELAY_MS);
        let at = earliest.max(self.channels.get(&(from, to)).copied().unwrap_or(0));
        self.channels.insert((from, to), at);
        let epoch = self.tabs[to].epoch;
        self.in_transit += 1;
        self.at(at - self.time, Ev::Message { to, epoch, msg });
    }

    /// `tabs.js`'s `onMessage`. A promoting tab still handles messages as a follower.
    pub fn on_message(&mut self, to: usize, msg: Msg) -> Result<(), String> {
        let leader = self.tabs[to].role == Role::Leader;
        if leader && !self.tabs[to].sync.connected {
            self.tabs[to].sync.connected = true;
            let changed = Msg::Commit {
                records: Vec::new(),
                after: Vec::new(),
                changed: true,
            };
            self.post(to, changed);
        }
        match msg {
            Msg::Commit { records, after, .. } if leader => {
                let after = Some(after);
                self.queue_task(to, Task::Adopt { records, after })
            }
            Msg::Commit {
                records, changed, ..
            } => {
                if !records.is_empty() {
                    let after = Some(Vec::new());
                    self.queue_task(to, Task::Adopt { records, after })?;
                }
                if changed {
                    self.schedule_refresh(to);
                }
                Ok(())
            }
            Msg::Hello if leader => {
                self.post_status(to, true);
                Ok(())
            }
            Msg::Status { paused } if !leader => {
                self.tabs[to].sync.leader_paused = Some(paused);
                Ok(())
            }
            Msg::Reply(answer) if !leader => self.queue_task(to, Task::Reply(answer)),
            _ => Ok(()),
        }
    }

    /// The leader posts its status when whether it says `paused` changed (or always, `force`). The
    /// runtime's role decides: a tab whose promotion started posts its status, its passive engine's
    /// during the promotion's read.
    pub fn post_status(&mut self, tab: usize, force: bool) {
        if !self.multi() || !self.runtime_leads(tab) || !self.tabs[tab].sync.connected {
            return;
        }
        // Never from a new leader's passive engine, whose pause is not the outbox's yet.
        let Some(engine) = self.tabs[tab].engine.as_ref().filter(|e| !e.is_passive()) else {
            return;
        };
        let paused = engine.is_paused();
        if force || self.tabs[tab].sync.posted_paused != Some(paused) {
            self.tabs[tab].sync.posted_paused = Some(paused);
            self.post(tab, Msg::Status { paused });
        }
    }

    /// The runtime's role for `tab_adopt` and `tab_refresh`: a promoting tab is a follower until its
    /// promotion sets it, before the rebuild.
    pub fn runtime_leads(&self, tab: usize) -> bool {
        let t = &self.tabs[tab];
        t.role == Role::Leader || (t.role == Role::Promoting && t.sync.promote_started)
    }

    /// `tab_adopt(records, after)`, a task: a follower adopts the records at once; the leader reads
    /// the store first when `after` names an op it does not know (or for its scan, with no `after`).
    /// Ends the task unless a read is on its way.
    pub fn adopt_task(
        &mut self,
        tab: usize,
        records: Vec<OpRecord>,
        after: Option<Vec<OpId>>,
    ) -> Result<bool, String> {
        if !self.runtime_leads(tab) {
            if !records.is_empty() {
                self.adopt(tab, records, false)?;
                self.check_mirror(tab)?;
            }
            return Ok(true);
        }
        let t = &self.tabs[tab];
        let engine = t.engine.as_ref().expect("alive");
        let named: HashSet<OpId> = records.iter().map(|r| r.id).collect();
        let unknown = |id: &OpId| {
            engine.op(*id).is_none() && !t.sync.deleted_ids.contains(id) && !named.contains(id)
        };
        let must_read = after.as_ref().is_none_or(|after| after.iter().any(unknown));
        if !must_read {
            self.adopt(tab, records, true)?;
            return Ok(true);
        }
        if after.is_some() {
            self.stats.adopt_reads += 1;
        } else {
            self.stats.scan_reads += 1;
        }
        let stored = Stored {
            records: self
                .store
                .op_ids()
                .filter(|id| unknown(id))
                .filter_map(|id| self.store.record(id))
                .collect(),
            ..Stored::default()
        };
        self.begin_read(
            StoreRead {
                tab,
                epoch: t.epoch,
                purpose: ReadPurpose::Adopt { records },
                stored,
                cursor: None,
            },
            0,
        );
        Ok(false)
    }

    /// The leader's read for adoption ended: what it knows or deleted meanwhile is left out.
    pub fn adopt_read_done(
        &mut self,
        tab: usize,
        named: Vec<OpRecord>,
        stored: Stored,
    ) -> Result<(), String> {
        if !self.runtime_leads(tab) {
            return Ok(());
        }
        let named_ids: HashSet<OpId> = named.iter().map(|r| r.id).collect();
        let records: Vec<OpRecord> = named.into_iter().chain(stored.records).collect();
        let adopted = self.adopt(tab, records, true)?;
        self.stats.adopted_by_scan +=
            adopted.iter().filter(|id| !named_ids.contains(id)).count() as u64;
        Ok(())
    }

    /// Adopts the records the tab does not know and did not delete; returns their ids. A follower
    /// adopts them as durable (`adopt`); the leader `adopt_unconfirmed`, and confirms them with its
    /// own enqueues (the debounced confirmation).
    fn adopt(
        &mut self,
        tab: usize,
        records: Vec<OpRecord>,
        leader: bool,
    ) -> Result<Vec<OpId>, String> {
        let t = &self.tabs[tab];
        let engine = t.engine.as_ref().expect("alive");
        let records: Vec<OpRecord> = records
            .into_iter()
            .filter(|r| engine.op(r.id).is_none() && !t.sync.deleted_ids.contains(&r.id))
            .collect();
        let ids: Vec<OpId> = records.iter().map(|r| r.id).collect();
        if ids.is_empty() {
            return Ok(ids);
        }
        let now = self.now(tab);
        let engine = self.tabs[tab].engine();
        let fx = if leader {
            self.stats.adopted += ids.len() as u64;
            engine.adopt_unconfirmed(records, now)
        } else {
            engine.adopt(records, now)
        }
        .map_err(|e| format!("adopt failed: {e}"))?;
        self.run(tab, fx)?;
        if leader {
            self.queue_confirmation(tab, &ids);
        }
        Ok(ids)
    }

    /// Starts a read of the store; it ends after an IndexedDB transaction's latency plus `extra` ms,
    /// and after every earlier read of the same tab.
    pub fn begin_read(&mut self, read: StoreRead, extra: u64) {
        let (tab, epoch) = (read.tab, read.epoch);
        let id = self.next_read;
        self.next_read += 1;
        self.reads.insert(id, read);
        let end = (self.time + self.rng.u64(1..8) + extra).max(self.tabs[tab].sync.last_read_end);
        self.tabs[tab].sync.last_read_end = end;
        self.at(
            end - self.time,
            Ev::ReadDone {
                tab,
                epoch,
                read: id,
            },
        );
    }

    pub fn read_done(&mut self, tab: usize, read: StoreRead) -> Result<(), String> {
        match read.purpose {
            ReadPurpose::Rebuild(rebuild) => {
                self.rebuild_read_done(tab, rebuild, read.stored, read.cursor)
            }
            ReadPurpose::Adopt { records } => {
                self.adopt_read_done(tab, records, read.stored)?;
                self.task_done(tab)
            }
        }
    }

    /// The tab's engine is about to delete these ops: it remembers them for 10 minutes, so no read
    /// of a store that may still hold them brings them back.
    pub fn note_deletes(&mut self, tab: usize, ids: &[OpId]) {
        if !self.multi() {
            return;
        }
        let now = self.now(tab);
        let sync = &mut self.tabs[tab].sync;
        for id in ids {
            sync.deleted.push_back((now, *id));
            sync.deleted_ids.insert(*id);
        }
        self.forget_old_deletes(tab);
    }

    fn forget_old_deletes(&mut self, tab: usize) {
        let now = self.now(tab);
        let sync = &mut self.tabs[tab].sync;
        while let Some((at, id)) = sync.deleted.front().copied() {
            if now.saturating_sub(at) < DELETED_MEMORY_MS {
                break;
            }
            sync.deleted.pop_front();
            sync.deleted_ids.remove(&id);
        }
    }

    /// The leader's safety net: every 2 s it scans the store and adopts what nobody told it of. A
    /// scan of a store unchanged since the last one finds nothing, so the timer sleeps until the next
    /// commit and wakes on the same grid of times (this keeps hours of idle time cheap; what is
    /// scanned and when is unchanged).
    pub fn start_scans(&mut self, tab: usize) {
        let now = self.time;
        let sync = &mut self.tabs[tab].sync;
        sync.scan_origin = now;
        sync.scanned_commits = None;
        sync.scan_asleep = false;
        let epoch = self.tabs[tab].epoch;
        self.at(SCAN_INTERVAL_MS, Ev::Scan { tab, epoch });
    }

    pub fn scan(&mut self, tab: usize) -> Result<(), String> {
        if self.tabs[tab].role != Role::Leader {
            return Ok(());
        }
        let commits = self.store.commits;
        let sync = &mut self.tabs[tab].sync;
        if sync.scanned_commits == Some(commits) {
            sync.scan_asleep = true;
            return Ok(());
        }
        sync.scanned_commits = Some(commits);
        let epoch = self.tabs[tab].epoch;
        self.at(SCAN_INTERVAL_MS, Ev::Scan { tab, epoch });
        self.queue_task(
            tab,
            Task::Adopt {
                records: Vec::new(),
                after: None,
            },
        )
    }

    fn wake_scan(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let now = self.time;
        let t = &mut self.tabs[leader];
        if !t.sync.scan_asleep {
            return;
        }
        t.sync.scan_asleep = false;
        let since = now - t.sync.scan_origin;
        let epoch = t.epoch;
        self.at(
            SCAN_INTERVAL_MS - since % SCAN_INTERVAL_MS,
            Ev::Scan { tab: leader, epoch },
        );
    }
}
