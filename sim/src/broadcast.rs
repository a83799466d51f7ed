//! What tabs tell each other (BroadcastChannel), and what they do about it.
//!
//! After every group commit that stored new ops, the committing tab posts `Ops(ids)` to every other
//! open tab; after every group commit of the leader it also posts `Changed`. Messages between two live
//! tabs arrive in order, after a small delay, and are never lost; a tab that dies between a commit and
//! its post never posts. A follower rebuilds its passive mirror from the store once its own queue is
//! idle, coalescing the messages of one delay window.
//!
//! The leader, on `Ops`, adopts **every** stored op it does not know, not only the ones named: an op
//! is made after the ops its tab showed, which were committed before it, but their own `Ops` may
//! never come (their tab died between commit and post) or come later (messages from two tabs are not
//! ordered). Adopting only the named ones sent an op before one it was made after (seed 17, 5 tabs).
//! As a safety net the leader also scans the store every few seconds, which catches an op whose tab
//! died before posting when nobody else commits.
//!
//! Every read of the store is a snapshot taken when it begins and handed over after a latency, as an
//! IndexedDB read transaction is: what the reader did meanwhile decides what of it still holds.

use std::collections::HashSet;

use outbox_core::{Engine, OpId, Stored};

use crate::lock::Role;
use crate::profile::{UNVERSIONED, VERSIONED};
use crate::store::version;
use crate::world::{Ev, World};

/// The longest a message takes between two tabs, ms.
pub const MESSAGE_DELAY_MS: u64 = 20;

/// A follower coalesces the messages of one delay window into one rebuild.
const REFRESH_DEBOUNCE_MS: u64 = MESSAGE_DELAY_MS;

/// How often the leader scans the whole store for ops nobody told it of, ms.
const SCAN_INTERVAL_MS: u64 = 3_000;

#[derive(Clone, Debug)]
pub enum Msg {
    /// These ops were just committed.
    Ops(Vec<OpId>),
    /// The leader committed: the store changed.
    Changed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPurpose {
    /// A follower's rebuild of its passive mirror.
    Mirror,
    /// The new leader's rebuild as an active engine.
    Promotion,
    /// The leader's read of ops to adopt: those a message named, or (`scan`) every stored op.
    Adopt { scan: bool },
}

/// A read of the store on its way.
pub struct StoreRead {
    pub tab: usize,
    pub epoch: u64,
    pub purpose: ReadPurpose,
    pub stored: Stored,
    pub cursor: Option<String>,
    /// The tab's enqueue count when the read began: one made during the read went into the old
    /// engine, and the snapshot may lack it.
    pub enqueues_at_start: u64,
    /// Ops the leader deleted while the read ran, or whose delete was not committed when it began:
    /// the snapshot may still hold them, and adopting them would bring back an op already settled.
    pub excluded: HashSet<OpId>,
}

impl World {
    /// After a commit of `tab`: its deletes are durable now, the leader's scan has something to look
    /// at, and the tab posts what it stored — unless it dies first.
    pub fn after_commit(&mut self, tab: usize, stored: &[OpId], deleted: &[OpId]) {
        if !self.multi() {
            return;
        }
        for id in deleted {
            self.tabs[tab].deletes_in_commit.remove(id);
        }
        self.wake_scan();
        let changed = self.tabs[tab].role == Role::Leader;
        if stored.is_empty() && !changed {
            return;
        }
        // Crash point: the commit is durable, its message never leaves.
        self.crash_point(tab);
        let epoch = self.tabs[tab].epoch;
        self.in_transit += 1;
        self.at(
            0,
            Ev::Post {
                tab,
                epoch,
                ops: stored.to_vec(),
                changed,
            },
        );
    }

    pub fn post(&mut self, from: usize, ops: Vec<OpId>, changed: bool) {
        for to in 0..self.tabs.len() {
            if to == from || !self.tabs[to].alive {
                continue;
            }
            if !ops.is_empty() {
                self.send_message(from, to, Msg::Ops(ops.clone()));
            }
            if changed {
                self.send_message(from, to, Msg::Changed);
            }
        }
    }

    fn send_message(&mut self, from: usize, to: usize, msg: Msg) {
        self.stats.messages += 1;
        let earliest = self.time + self.rng.u64(1..MESSAGE_DELAY_MS);
        let at = earliest.max(self.channels.get(&(from, to)).copied().unwrap_or(0));
        self.channels.insert((from, to), at);
        let epoch = self.tabs[to].epoch;
        self.in_transit += 1;
        self.at(at - self.time, Ev::Message { to, epoch, msg });
    }

    pub fn on_message(&mut self, to: usize, msg: Msg) -> Result<(), String> {
        match (self.tabs[to].role, msg) {
            (Role::Leader, Msg::Ops(_)) => self.start_adopt_read(to, false),
            (Role::Promoting, Msg::Ops(_)) => self.tabs[to].heard_while_promoting = true,
            (Role::Follower, _) if !self.tabs[to].refresh_scheduled => {
                self.tabs[to].refresh_scheduled = true;
                let epoch = self.tabs[to].epoch;
                self.at(REFRESH_DEBOUNCE_MS, Ev::Refresh { tab: to, epoch });
            }
            _ => {}
        }
        Ok(())
    }

    /// A follower's debounced refresh: rebuild the mirror once the queue is idle.
    pub fn refresh(&mut self, tab: usize) -> Result<(), String> {
        self.tabs[tab].refresh_scheduled = false;
        if self.tabs[tab].role == Role::Follower {
            self.tabs[tab].rebuild_wanted = true;
            self.rebuild_when_idle(tab);
        }
        Ok(())
    }

    /// Starts the read for a wanted rebuild if the tab's own queue is idle: no group committing and
    /// none pending, so every enqueue it resolved is in what it reads.
    pub fn rebuild_when_idle(&mut self, tab: usize) {
        let t = &self.tabs[tab];
        if !t.rebuild_wanted
            || t.rebuild_reading
            || t.commit_active
            || !t.queue.is_idle()
            || t.role == Role::Leader
        {
            return;
        }
        let purpose = if t.role == Role::Promoting {
            ReadPurpose::Promotion
        } else {
            ReadPurpose::Mirror
        };
        let enqueues_at_start = t.enqueues;
        self.tabs[tab].rebuild_wanted = false;
        self.tabs[tab].rebuild_reading = true;
        let (stored, cursor) = self.store.load();
        self.begin_read(StoreRead {
            tab,
            epoch: self.tabs[tab].epoch,
            purpose,
            stored,
            cursor,
            enqueues_at_start,
            excluded: HashSet::new(),
        });
    }

    /// The leader reads the stored ops it does not know, to adopt them (after a message, or by its
    /// timer: `scan`). Ops it knows when the read begins are left out of the snapshot: adopting them
    /// would be a no-op, or (if deleted meanwhile) they are excluded anyway.
    pub fn start_adopt_read(&mut self, tab: usize, scan: bool) {
        let excluded = self.tabs[tab].deletes_in_commit.clone();
        let engine = self.tabs[tab].engine.as_ref().expect("alive");
        let unknown: Vec<OpId> = self
            .store
            .op_ids()
            .filter(|id| engine.op(**id).is_none() && !excluded.contains(id))
            .copied()
            .collect();
        let records = unknown
            .iter()
            .filter_map(|id| self.store.record(id))
            .collect();
        self.begin_read(StoreRead {
            tab,
            epoch: self.tabs[tab].epoch,
            purpose: ReadPurpose::Adopt { scan },
            stored: Stored {
                records,
                ..Stored::default()
            },
            cursor: None,
            enqueues_at_start: 0,
            excluded,
        });
    }

    fn begin_read(&mut self, read: StoreRead) {
        let (tab, epoch) = (read.tab, read.epoch);
        let id = self.next_read;
        self.next_read += 1;
        self.reads.insert(id, read);
        let latency = self.rng.u64(1..8);
        self.at(
            latency,
            Ev::ReadDone {
                tab,
                epoch,
                read: id,
            },
        );
    }

    /// The leader's engine deleted these ops: no read still running may bring them back.
    pub fn note_deletes(&mut self, tab: usize, ids: &[OpId]) {
        if ids.is_empty() || !self.multi() {
            return;
        }
        self.tabs[tab].deletes_in_commit.extend(ids.iter().copied());
        for read in self.reads.values_mut() {
            if read.tab == tab && matches!(read.purpose, ReadPurpose::Adopt { .. }) {
                read.excluded.extend(ids.iter().copied());
            }
        }
    }

    pub fn read_done(&mut self, tab: usize, read: StoreRead) -> Result<(), String> {
        match read.purpose {
            ReadPurpose::Mirror | ReadPurpose::Promotion => {
                let t = &mut self.tabs[tab];
                t.rebuild_reading = false;
                let role = if read.purpose == ReadPurpose::Promotion {
                    Role::Promoting
                } else {
                    Role::Follower
                };
                if t.role != role || t.enqueues != read.enqueues_at_start {
                    // Granted the lock meanwhile, or an enqueue of its own went into the old engine
                    // during the read: read again once the queue is idle.
                    t.rebuild_wanted = t.role != Role::Leader;
                    self.rebuild_when_idle(tab);
                    return Ok(());
                }
                self.rebuild(tab, read)
            }
            ReadPurpose::Adopt { scan } => {
                if self.tabs[tab].role != Role::Leader {
                    return Ok(());
                }
                let records: Vec<_> = read
                    .stored
                    .records
                    .into_iter()
                    .filter(|r| !read.excluded.contains(&r.id))
                    .collect();
                let engine = self.tabs[tab].engine();
                let new = records.iter().filter(|r| engine.op(r.id).is_none()).count() as u64;
                self.stats.adopted += new;
                if scan {
                    self.stats.adopted_by_scan += new;
                }
                let now = self.now(tab);
                let fx = self.tabs[tab]
                    .engine()
                    .adopt(records, now)
                    .map_err(|e| format!("adopt failed: {e}"))?;
                self.run(tab, fx)
            }
        }
    }

    /// Rebuilds the tab's engine from a snapshot: a passive mirror, or (promotion) the leader's
    /// active engine, exactly as a restore at open.
    fn rebuild(&mut self, tab: usize, read: StoreRead) -> Result<(), String> {
        let active = read.purpose == ReadPurpose::Promotion;
        let now = self.now(tab);
        let seed = self.rng.u64(..);
        let seen = read
            .stored
            .docs
            .iter()
            .map(|d| ((d.collection.clone(), d.key.clone()), version(d)))
            .collect();
        let mut engine = Engine::restore_from(self.profile.config.clone(), seed, read.stored, now)
            .map_err(|e| format!("restore failed: {e}"))?;
        engine.set_passive(!active);
        self.stats.rebuilds += 1;
        let t = &mut self.tabs[tab];
        t.engine = Some(engine);
        t.cursor = read.cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        t.seen = seen;
        // The old engine's timer is dropped with it.
        t.wake_generation += 1;
        if active {
            t.role = Role::Leader;
            self.note(format!("tab {tab} leads"));
            // Crash point: the new leader dies after its read, before anything it decided is stored.
            self.crash_point(tab);
        }
        self.check_confirmed(tab)?;
        if !self.tabs[tab].online {
            let fx = self.tabs[tab].engine().set_online(false, now);
            self.run(tab, fx)?;
        }
        let fx = self.tabs[tab].engine().drain(now);
        self.run(tab, fx)?;
        if active {
            if std::mem::take(&mut self.tabs[tab].heard_while_promoting) {
                self.start_adopt_read(tab, false);
            }
            self.start_scans(tab);
            self.run_orphaned_commands(tab)
        } else {
            self.check_mirror(tab)
        }
    }

    /// The leader's safety net: every few seconds it scans the store and adopts what nobody told it
    /// of (a follower that died between its commit and its post). A scan of a store unchanged since
    /// the last one finds nothing, so the timer sleeps until the next commit and wakes on the same
    /// grid of times (this keeps hours of idle time cheap; what is scanned and when is unchanged).
    pub fn start_scans(&mut self, tab: usize) {
        let t = &mut self.tabs[tab];
        t.scan_origin = self.time;
        t.scanned_commits = None;
        t.scan_asleep = false;
        let epoch = t.epoch;
        self.at(SCAN_INTERVAL_MS, Ev::Scan { tab, epoch });
    }

    pub fn scan(&mut self, tab: usize) -> Result<(), String> {
        if self.tabs[tab].role != Role::Leader {
            return Ok(());
        }
        let commits = self.store.commits;
        if self.tabs[tab].scanned_commits == Some(commits) {
            self.tabs[tab].scan_asleep = true;
            return Ok(());
        }
        self.tabs[tab].scanned_commits = Some(commits);
        self.start_adopt_read(tab, true);
        let epoch = self.tabs[tab].epoch;
        self.at(SCAN_INTERVAL_MS, Ev::Scan { tab, epoch });
        Ok(())
    }

    fn wake_scan(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let t = &mut self.tabs[leader];
        if !t.scan_asleep {
            return;
        }
        t.scan_asleep = false;
        let since = self.time - t.scan_origin;
        let epoch = t.epoch;
        self.at(
            SCAN_INTERVAL_MS - since % SCAN_INTERVAL_MS,
            Ev::Scan { tab: leader, epoch },
        );
    }

    /// Nothing of the protocol is under way: no message, post, read, refresh or promotion, every
    /// queue idle, and a leader.
    pub fn calm(&self) -> bool {
        self.in_transit == 0
            && self.orphaned_commands.is_empty()
            && self.leader().is_some()
            && self.reads.values().all(|r| !self.alive(r.tab, r.epoch))
            && self.tabs.iter().all(|t| {
                !t.alive
                    || (t.queue.is_idle()
                        && !t.commit_active
                        && t.unconfirmed.is_empty()
                        && !t.refresh_scheduled
                        && !t.rebuild_wanted
                        && !t.rebuild_reading
                        && !t.heard_while_promoting
                        && t.role != Role::Promoting)
            })
    }

    /// A follower's mirror, rebuilt while all is calm, shows what the leader shows: the same view of
    /// every entity, from the same ops in the same lane order.
    pub fn check_mirror(&self, tab: usize) -> Result<(), String> {
        let Some(leader) = self.leader() else {
            return Ok(());
        };
        if tab == leader || !self.tabs[tab].alive || !self.calm() {
            return Ok(());
        }
        let (lead, mirror) = (
            self.tabs[leader].engine.as_ref().expect("alive"),
            self.tabs[tab].engine.as_ref().expect("alive"),
        );
        // An op whose tab died before posting it waits for the leader's scan: not settled yet.
        if self.store.op_ids().any(|id| lead.op(*id).is_none()) {
            return Ok(());
        }
        for collection in [VERSIONED, UNVERSIONED] {
            for k in 0..self.profile.keys {
                let key = format!("k{k}");
                let item = |e: &Engine| {
                    let lane: Vec<OpId> =
                        e.ops_for(collection, &key).iter().map(|r| r.id).collect();
                    let view = e
                        .view_item(collection, &key)
                        .map(|i| (i.value.cloned(), i.version.map(str::to_owned), i.pending));
                    (view, lane)
                };
                let (want, got) = (item(lead), item(mirror));
                if want != got {
                    let only = |a: &[OpId], b: &[OpId]| -> Vec<OpId> {
                        a.iter()
                            .filter(|id| !b.contains(id))
                            .take(5)
                            .copied()
                            .collect()
                    };
                    let first_difference = want.1.iter().zip(&got.1).position(|(a, b)| a != b);
                    return Err(format!(
                        "tab {tab} mirrors {collection}/{key} unlike the leader (tab {leader}): view \
                         {:?} / leader's {:?}; lanes of {} / {} ops, first differing at {:?}; only \
                         the mirror has {:?}, only the leader {:?}",
                        got.0,
                        want.0,
                        got.1.len(),
                        want.1.len(),
                        first_difference,
                        only(&got.1, &want.1),
                        only(&want.1, &got.1),
                    ));
                }
            }
        }
        Ok(())
    }
}
