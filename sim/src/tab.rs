//! One tab: the real engine and the real `EffectQueue`, driven the way the browser runtime drives them
//! (`src/runtime/effects.rs` and `src/runtime/durable.rs`): writes commit in groups, one at a time; a
//! send leaves when the queue releases it; a failed commit rejects its enqueues, keeps the rest for a
//! retry with backoff and stalls the engine; a crash loses everything not yet committed.
//!
//! With several tabs on one store, a tab is the leader or a follower ([`crate::lock`]); a follower's
//! engine is passive, and the only writes it may make are those of its own enqueues.

use std::collections::{BTreeSet, HashMap, HashSet};

use outbox_core::{
    ConflictResolution, Effect, EffectQueue, Engine, Event, Group, OpId, StorageError,
};

use crate::broadcast::{Msg, TabSync};
use crate::lock::Role;
use crate::oracle::Fate;
use crate::rebuild::Task;
use crate::server::Entity;
use crate::store::version;
use crate::world::{Ev, World};

/// The runtime's confirmation debounce (`drainDelayMs`).
const DRAIN_DELAY_MS: u64 = 5;

pub struct Tab {
    pub alive: bool,
    pub epoch: u64,
    pub engine: Option<Engine>,
    pub queue: EffectQueue,
    committing: Option<Group>,
    /// A commit runs, is about to, or waits out a failure's backoff.
    pub commit_active: bool,
    pub unconfirmed: Vec<OpId>,
    confirm_scheduled: bool,
    pub wake_generation: u64,
    /// Engine time = true time + this.
    pub clock_offset: i64,
    pub paused: bool,
    pub online: bool,
    /// Batches sent and neither answered nor timed out.
    pub outstanding: HashSet<u64>,
    pub cursor: u64,
    /// The newest version of each entity delivered to this engine since it opened.
    pub seen: HashMap<Entity, u64>,
    /// Nothing may be sent before this true time (a rate limit's wait)...
    pub rate_limited_until: u64,
    /// ...except these batches, formed before the limit was known.
    pub formed_before_limit: HashSet<u64>,
    /// When the tab last died (true time), to pick a detectable clock jump at reopen.
    pub died_at: u64,
    /// Pages of pulls on their way.
    pub pulling: u32,
    pub role: Role,
    /// This session's enqueues whose commit has not landed (their futures wait): a rebuild carries
    /// them over (`unstored_enqueues`).
    pub unstored: BTreeSet<OpId>,
    /// The ops this session enqueued: the only ones a passive engine may write.
    pub own_ops: HashSet<OpId>,
    /// The multi-tab protocol's state.
    pub sync: TabSync,
}

impl Tab {
    pub fn closed() -> Tab {
        Tab {
            alive: false,
            epoch: 0,
            engine: None,
            queue: EffectQueue::new(),
            committing: None,
            commit_active: false,
            unconfirmed: Vec::new(),
            confirm_scheduled: false,
            wake_generation: 0,
            clock_offset: 0,
            paused: false,
            online: true,
            outstanding: HashSet::new(),
            cursor: 0,
            seen: HashMap::new(),
            rate_limited_until: 0,
            formed_before_limit: HashSet::new(),
            died_at: 0,
            pulling: 0,
            role: Role::Follower,
            unstored: BTreeSet::new(),
            own_ops: HashSet::new(),
            sync: TabSync::default(),
        }
    }

    /// No write waits or commits, no send is held or out, no confirmation is due.
    pub fn is_idle(&self) -> bool {
        self.queue.is_idle()
            && !self.commit_active
            && self.outstanding.is_empty()
            && self.unconfirmed.is_empty()
            && self.pulling == 0
    }

    pub fn engine(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("an alive tab has an engine")
    }
}

impl World {
    /// Carries out one engine call's effects, as `Runtime::run` does.
    pub fn run(&mut self, tab: usize, effects: Vec<Effect>) -> Result<(), String> {
        self.check_writes(tab, &effects)?;
        let accepted = self.tabs[tab].queue.accept(effects);
        self.note_group(tab, &accepted);
        self.carry_out(tab, accepted)
    }

    pub fn run_enqueue(
        &mut self,
        tab: usize,
        id: OpId,
        effects: Vec<Effect>,
    ) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        t.unstored.insert(id);
        if let Some(during) = t.sync.enqueued_during_read.as_mut() {
            during.push(id);
        }
        t.own_ops.insert(id);
        self.check_writes(tab, &effects)?;
        let accepted = self.tabs[tab].queue.accept_enqueue(id, effects);
        self.note_group(tab, &accepted);
        self.carry_out(tab, accepted)
    }

    fn note_group(&mut self, tab: usize, accepted: &outbox_core::Accepted) {
        if let Some(group) = accepted.group {
            self.tabs[tab].sync.last_group = group;
            self.tabs[tab].sync.writing_calls += 1;
        }
    }

    /// A passive engine writes only its own enqueues (and takes back one whose commit failed) and
    /// never sends. Every tab's deletes are noted, so no read brings the ops back.
    fn check_writes(&mut self, tab: usize, effects: &[Effect]) -> Result<(), String> {
        let deleted: Vec<OpId> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Delete(id) => Some(*id),
                _ => None,
            })
            .collect();
        self.note_deletes(tab, &deleted);
        let t = &self.tabs[tab];
        if t.engine.as_ref().is_some_and(Engine::is_passive) {
            for effect in effects {
                let own = match effect {
                    Effect::Persist(record) => t.own_ops.contains(&record.id),
                    Effect::Delete(id) => {
                        t.own_ops.contains(id) && self.oracle.ops[id].fate == Fate::Rejected
                    }
                    Effect::ScheduleWake(_) | Effect::Emit(_) => true,
                    _ => false,
                };
                if !own {
                    return Err(format!(
                        "tab {tab}, a follower, produced {}",
                        format!("{effect:?}").chars().take(200).collect::<String>()
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn carry_out(&mut self, tab: usize, accepted: outbox_core::Accepted) -> Result<(), String> {
        for effect in accepted.now {
            match effect {
                Effect::Send(batch) => self.start_send(tab, batch)?,
                Effect::ScheduleWake(at) => self.schedule_wake(tab, at),
                Effect::Emit(event) => self.on_event(tab, event)?,
                _ => {}
            }
        }
        if accepted.group.is_some() {
            self.schedule_commit(tab);
        }
        self.post_status(tab, false);
        self.check_status(tab)?;
        self.check_confirmed(tab)
    }

    pub fn schedule_commit(&mut self, tab: usize) {
        let t = &mut self.tabs[tab];
        if !t.commit_active {
            t.commit_active = true;
            let epoch = t.epoch;
            self.at(0, Ev::CommitBegin { tab, epoch });
        }
    }

    pub fn commit_begin(&mut self, tab: usize) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        let Some(group) = t.queue.begin_commit() else {
            t.commit_active = false;
            return Ok(());
        };
        t.committing = Some(group);
        let epoch = t.epoch;
        let ok = !self.chance(self.profile.commit_failure);
        let latency = self.rng.u64(1..15);
        self.at(latency, Ev::CommitEnd { tab, epoch, ok });
        Ok(())
    }

    pub fn commit_end(&mut self, tab: usize, ok: bool) -> Result<(), String> {
        let group = self.tabs[tab]
            .committing
            .take()
            .expect("a commit was running");
        let now = self.now(tab);
        if !ok {
            self.stats.commit_failures += 1;
            let rejected = self.tabs[tab].queue.commit_failed(group);
            for id in &rejected {
                self.oracle.op(id).fate = Fate::Rejected;
                self.tabs[tab].unstored.remove(id);
            }
            let fx = self.tabs[tab].engine().abandon_unstored(&rejected, now);
            self.run(tab, fx)?;
            let error = StorageError {
                code: "STORAGE_FAILED".into(),
                message: "simulated".into(),
            };
            let fx = self.tabs[tab].engine().storage_failed(error, now);
            self.run(tab, fx)?;
            let failures = self.tabs[tab].queue.failures().min(7);
            let epoch = self.tabs[tab].epoch;
            self.at(
                (50u64 << failures).min(5_000),
                Ev::CommitBegin { tab, epoch },
            );
            return Ok(());
        }
        let touched = self.store.touched_by(&group.writes);
        self.store.commit(&group.writes, self.time)?;
        self.check_durable_sends(&touched)?;
        let done = self.tabs[tab].queue.commit_succeeded(group.id);
        for id in &done.stored {
            let model = self.oracle.op(id);
            if model.fate == Fate::Enqueuing {
                model.fate = Fate::Live;
            }
            self.tabs[tab].unstored.remove(id);
        }
        self.queue_confirmation(tab, &done.stored);
        for batch in done.sends {
            self.start_send(tab, batch)?;
        }
        if self.tabs[tab].engine().status().storage_error.is_some() {
            let fx = self.tabs[tab].engine().storage_recovered(now);
            self.run(tab, fx)?;
        }
        // `tab_committed`, after `committed`; the answers that waited for this commit leave after.
        self.after_commit(tab, &done.stored, &group.writes);
        if self.multi() {
            self.answer_durable(tab);
        }
        let epoch = self.tabs[tab].epoch;
        self.at(0, Ev::CommitBegin { tab, epoch });
        Ok(())
    }

    /// `queue_confirmation`: the ops are confirmed to the engine after the debounce.
    pub fn queue_confirmation(&mut self, tab: usize, ids: &[OpId]) {
        let t = &mut self.tabs[tab];
        t.unconfirmed.extend_from_slice(ids);
        if !ids.is_empty() && !t.confirm_scheduled {
            t.confirm_scheduled = true;
            let epoch = t.epoch;
            self.at(DRAIN_DELAY_MS, Ev::Confirm { tab, epoch });
        }
    }

    pub fn confirm(&mut self, tab: usize) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        t.confirm_scheduled = false;
        let ids = std::mem::take(&mut t.unconfirmed);
        let now = self.now(tab);
        let fx = self.tabs[tab].engine().confirm_stored(&ids, now);
        self.run(tab, fx)
    }

    fn schedule_wake(&mut self, tab: usize, at: u64) {
        let now = self.now(tab);
        let t = &mut self.tabs[tab];
        t.wake_generation += 1;
        let (epoch, generation) = (t.epoch, t.wake_generation);
        self.at(
            at.saturating_sub(now) + 1,
            Ev::Wake {
                tab,
                epoch,
                generation,
            },
        );
    }

    pub fn wake(&mut self, tab: usize, generation: u64) -> Result<(), String> {
        // A newer timer replaced this one (the runtime drops the old timer).
        if generation != self.tabs[tab].wake_generation {
            return Ok(());
        }
        let now = self.now(tab);
        let fx = self.tabs[tab].engine().tick(now);
        self.run(tab, fx)?;
        if generation == self.tabs[tab].wake_generation {
            if let Some(next) = self.tabs[tab].engine().next_wake() {
                // The runtime re-arms its timer from `next_wake` after every tick: a wake-up that is
                // still due right after a tick would spin it.
                if next <= now {
                    return Err(format!(
                        "tab {tab} asks to be woken at {next}, right after a tick at {now}: its \
                         timer would spin"
                    ));
                }
                self.schedule_wake(tab, next);
            }
        }
        Ok(())
    }

    /// What the engine tells the app, checked against the server's ledger.
    fn on_event(&mut self, tab: usize, event: Event) -> Result<(), String> {
        if !matches!(
            event,
            Event::StatusChanged { .. } | Event::Enqueued { .. } | Event::Sent { .. }
        ) {
            let line = format!("tab {tab}: {event:?}");
            self.note(line.chars().take(300).collect());
        }
        match event {
            Event::Acked { id, .. } => {
                self.oracle.check_acked(&id, &self.server)?;
                self.oracle.op(&id).fate = Fate::Acked;
                self.stats.acked += 1;
            }
            Event::Conflict { id, resolution, .. } => {
                self.stats.conflicts += 1;
                self.check_conflict_has_a_cause(&id)?;
                if resolution == ConflictResolution::Dropped {
                    self.oracle
                        .check_not_applied(&id, &self.server, "dropped by server-wins")?;
                    self.oracle.op(&id).fate = Fate::Dropped;
                }
            }
            Event::Failed { id, .. } => {
                self.stats.failed += 1;
                let maybe = self.tabs[tab]
                    .engine()
                    .op(id)
                    .is_some_and(|r| r.maybe_applied);
                if !maybe {
                    self.oracle.check_not_applied(
                        &id,
                        &self.server,
                        "failed (and not maybe applied)",
                    )?;
                }
            }
            Event::Unknown { id, .. } => {
                self.stats.unknown += 1;
                let key = self.tabs[tab].engine().op(id).map(|r| r.idempotency_key);
                if let Some(key) = key {
                    self.oracle.op(&id).unknown_keys.insert(key);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The tab dies: what is not committed is gone; requests on the way still reach the server.
    pub fn crash(&mut self, tab: usize) -> Result<(), String> {
        if !self.tabs[tab].alive {
            return Ok(());
        }
        self.stats.crashes += 1;
        if self.tabs[tab].role == Role::Leader {
            self.leader_died(tab, self.tabs[tab].epoch);
        }
        let died = Tab {
            epoch: self.tabs[tab].epoch,
            clock_offset: self.tabs[tab].clock_offset,
            died_at: self.time,
            ..Tab::closed()
        };
        self.tabs[tab] = died;
        self.release_lock(tab);
        // An enqueue still unresolved died with its group, which never committed.
        for model in self.oracle.ops.values_mut() {
            if model.tab == tab && model.fate == Fate::Enqueuing {
                model.fate = Fate::Rejected;
            }
        }
        if !self.healed {
            let gap = match self.rng.u32(..100) {
                0..60 => self.rng.u64(10..5_000),
                60..85 => self.rng.u64(60_000..crate::profile::HOUR),
                _ => self
                    .rng
                    .u64(crate::profile::HOUR..72 * crate::profile::HOUR),
            };
            self.at(gap, Ev::Reopen { tab });
        }
        Ok(())
    }

    /// A tab opens: the engine is restored from the store alone, with a new seed and maybe a clock
    /// that jumped.
    pub fn reopen(&mut self, tab: usize) -> Result<(), String> {
        if self.tabs[tab].alive {
            return Ok(());
        }
        let gap = self.time - self.tabs[tab].died_at;
        let jump: i64 = if self.healed || self.tabs[tab].epoch == 0 {
            0
        } else {
            match self.rng.u32(..100) {
                0..75 => 0,
                75..85 => self.rng.i64(-5_000..5_000),
                85..93 => self
                    .rng
                    .i64(crate::profile::HOUR as i64..48 * crate::profile::HOUR as i64),
                // Set back: either within the margin the client keeps, or by more than the time since
                // the store was last written, which the stored clock mark reveals (docs/PROTOCOL.md
                // §4 states the assumption).
                _ if self.rng.bool() => {
                    -(self.rng.u64(..=self.profile.clock_margin_ms() / 2) as i64)
                }
                _ => {
                    let since_write = self.time - self.store.last_commit_at;
                    -((since_write + 120_000 + self.rng.u64(..48 * crate::profile::HOUR)) as i64)
                }
            }
        };
        self.note(format!(
            "tab {tab} reopens after {gap} ms, clock jumps {jump} ms"
        ));
        let (stored, cursor) = self.store.load();
        let present: HashSet<OpId> = stored.records.iter().map(|r| r.id).collect();
        for (id, model) in self.oracle.ops.iter() {
            match model.fate {
                Fate::Live if !present.contains(id) => {
                    return Err(format!(
                        "op {id} was told durable, and is gone from the store"
                    ));
                }
                Fate::Rejected if present.contains(id) => {
                    return Err(format!(
                        "op {id} was rejected, and came back from the store"
                    ));
                }
                _ => {}
            }
        }
        let seen: HashMap<Entity, u64> = stored
            .docs
            .iter()
            .map(|d| ((d.collection.clone(), d.key.clone()), version(d)))
            .collect();
        let epoch = self.tabs[tab].epoch + 1;
        let clock_offset = self.tabs[tab].clock_offset + jump;
        self.clock_ahead_ms = self.clock_ahead_ms.max(clock_offset);
        self.tabs[tab] = Tab {
            alive: true,
            epoch,
            clock_offset,
            cursor: cursor.and_then(|c| c.parse().ok()).unwrap_or(0),
            seen,
            ..Tab::closed()
        };
        let now = self.now(tab);
        let seed = self.rng.u64(..);
        let mut engine = Engine::restore_from(self.profile.config.clone(), seed, stored, now)
            .map_err(|e| format!("restore failed: {e}"))?;
        // A tab that opens while the lock is free takes it; otherwise it follows.
        let leads = self.request_lock(tab);
        engine.set_passive(!leads);
        self.tabs[tab].role = if leads { Role::Leader } else { Role::Follower };
        self.tabs[tab].sync.connected = !leads;
        self.tabs[tab].engine = Some(engine);
        self.check_confirmed(tab)?;
        let fx = self.tabs[tab].engine().drain(now);
        self.run(tab, fx)?;
        if self.multi() {
            if leads {
                self.start_scans(tab);
                self.post_status(tab, true);
                // As a promoted tab does (`lead`): commands forwarded while no tab led run here. (In
                // the runtime no live follower waits then: each queues for the lock and gets it before
                // a tab that opens; what is left is the command of a tab that died, as here.)
                while let Some(forward) = self.orphaned_commands.pop_front() {
                    self.tabs[tab].sync.tasks.push_back(Task::Answer(forward));
                }
                self.task_done(tab)?;
            } else {
                self.post(tab, Msg::Hello);
            }
        }
        Ok(())
    }
}
