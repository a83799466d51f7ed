//! What a tab does with its messages, one at a time (`serially` in `pkg/tabs.js`), and its rebuilds
//! from the store (`rebuild` in `src/runtime/tabs.rs`).
//!
//! - **Refresh.** A follower rebuilds its passive engine from the store only after a commit message
//!   that `changed` stored state, throttled: the timer waits at least 10 ms and at least 4× the
//!   duration of its previous refresh. A rebuild's duration is an IndexedDB read (1–7 ms) plus
//!   [`REBUILD_US_PER_OP`] per stored op (parsing and restoring), so a follower of a leader with a big
//!   queue re-reads less often.
//! - **Rebuild.** It reads only while the tab's own writes are idle (no group pending or committing);
//!   otherwise it is deferred (`refresh_wanted`) and made after the tab's next commit that leaves them
//!   idle — that one outside the serial queue, as the runtime spawns it. A read that overlapped an
//!   enqueue of its own, or after which writes are on their way again, is read again (5 attempts).
//! - **Answers.** The leader runs a forwarded command in its serial queue and answers once what it
//!   wrote is durable. The follower rebuilds before the command's promise settles: a discard the
//!   leader made is then no longer shown (checked).
//! - **Promotion.** Granted the lock, a tab waits for its own writes to be idle (polling every 5 ms, at
//!   most 100 times), rebuilds as an active engine (exactly a restore at open: ops stored in flight
//!   become pending and maybe applied, same keys), applies the pause of the last status it heard from
//!   the leader, `set_online`, `drain`, then posts `commit { records: [], changed: true }` so followers
//!   re-read, and its status. Its read follows the grant, which follows the previous leader's death,
//!   so nothing it sends is older than that leader's last commit. Commands that waited for a leader
//!   run now.
//!
//! The leader's events, which followers re-emit after a refresh that follows them, are not modelled:
//! no check looks at a follower's events.

use outbox_core::{Engine, OpId, OpRecord, Stored};

use crate::broadcast::{Msg, ReadPurpose, StoreRead};
use crate::command::Command;
use crate::lock::Role;
use crate::profile::{UNVERSIONED, VERSIONED};
use crate::store::version;
use crate::world::{Ev, World};

/// The modelled cost of a rebuild per stored op, µs (parse, restore): a big queue's rebuilds are slow,
/// and the throttle spaces them out.
pub const REBUILD_US_PER_OP: u64 = 10;
/// `REFRESH_DELAY_MS` and `REFRESH_SPACING`.
const REFRESH_DELAY_MS: u64 = 10;
const REFRESH_SPACING: u64 = 4;
/// A rebuild's attempts at a read no enqueue overlapped.
const REBUILD_ATTEMPTS: u32 = 5;
/// The promotion's wait for the tab's own writes: polls, and the time between two.
const PROMOTE_POLLS: u32 = 100;
const PROMOTE_POLL_MS: u64 = 5;

/// Work a tab does in its serial queue.
#[derive(Clone, Debug)]
pub enum Task {
    /// `tab_adopt(records)`: records from a commit message; none, the leader's scan.
    Adopt(Vec<OpRecord>),
    /// A follower's throttled refresh.
    Refresh,
    /// The lock was granted.
    Promote,
    /// The leader runs a command a follower forwarded, and answers.
    Answer(Forward),
    /// The leader's answer reached the follower: it rebuilds, then the promise settles.
    Reply(Answer),
}

/// A command a follower forwarded, and the session it came from.
#[derive(Clone, Debug)]
pub struct Forward {
    pub cmd: Command,
    pub from: (usize, u64),
}

/// The leader's answer to a forwarded command.
#[derive(Clone, Debug)]
pub struct Answer {
    pub to: (usize, u64),
    /// The op the command discarded, if it did.
    pub discarded: Option<OpId>,
}

/// A rebuild on its way, and what it finishes.
#[derive(Debug)]
pub struct Rebuild {
    passive: bool,
    attempt: u32,
    then: Then,
}

#[derive(Debug)]
enum Then {
    /// The rebuild the runtime spawns after a commit: no task waits for it.
    Nothing,
    Refresh {
        started: u64,
    },
    Promote {
        paused: Option<bool>,
    },
    Reply(Answer),
}

impl World {
    pub fn queue_task(&mut self, tab: usize, task: Task) -> Result<(), String> {
        self.tabs[tab].sync.tasks.push_back(task);
        self.pump(tab)
    }

    /// The task that ran ended: the next one starts.
    pub fn task_done(&mut self, tab: usize) -> Result<(), String> {
        self.tabs[tab].sync.task_running = false;
        self.pump(tab)
    }

    fn pump(&mut self, tab: usize) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        let sync = &mut t.sync;
        if !t.alive || sync.task_running {
            return Ok(());
        }
        let Some(task) = sync.tasks.pop_front() else {
            return Ok(());
        };
        sync.task_running = true;
        match task {
            Task::Adopt(records) => {
                if self.adopt_task(tab, records)? {
                    return self.task_done(tab);
                }
                Ok(())
            }
            // tabs.js's role is a follower's until the promotion is done; the runtime's, until it set it.
            Task::Refresh if self.tabs[tab].role != Role::Leader && !self.runtime_leads(tab) => {
                let started = self.time;
                self.rebuild(tab, true, 0, Then::Refresh { started })
            }
            Task::Reply(answer)
                if self.tabs[tab].role != Role::Leader && !self.runtime_leads(tab) =>
            {
                self.rebuild(tab, true, 0, Then::Reply(answer))
            }
            Task::Promote if self.tabs[tab].role == Role::Promoting => self.promote_poll(tab),
            Task::Answer(forward) => self.answer(tab, forward),
            _ => self.task_done(tab),
        }
    }

    /// A commit message said the store changed: the follower's throttled refresh.
    pub fn schedule_refresh(&mut self, tab: usize) {
        let sync = &mut self.tabs[tab].sync;
        if sync.refresh_timer {
            return;
        }
        sync.refresh_timer = true;
        let delay = REFRESH_DELAY_MS.max(REFRESH_SPACING * sync.last_refresh_ms);
        let epoch = self.tabs[tab].epoch;
        self.at(delay, Ev::RefreshTimer { tab, epoch });
    }

    pub fn refresh_timer(&mut self, tab: usize) -> Result<(), String> {
        self.tabs[tab].sync.refresh_timer = false;
        self.queue_task(tab, Task::Refresh)
    }

    /// After a commit of the tab's own: a rebuild deferred for its writes is made now if they are idle
    /// (the runtime spawns it outside the serial queue).
    pub fn deferred_rebuild(&mut self, tab: usize) -> Result<(), String> {
        let t = &self.tabs[tab];
        if self.multi() && t.sync.refresh_wanted && t.queue.is_idle() && !self.runtime_leads(tab) {
            return self.rebuild(tab, true, 0, Then::Nothing);
        }
        Ok(())
    }

    /// The runtime's `rebuild`: reads the store if the tab's own writes are idle, else defers.
    fn rebuild(
        &mut self,
        tab: usize,
        passive: bool,
        attempt: u32,
        then: Then,
    ) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        let gives_up = attempt >= REBUILD_ATTEMPTS || !t.queue.is_idle();
        let gap = match then {
            Then::Reply(_) => self.runtime_gaps.0,
            Then::Promote { .. } => self.runtime_gaps.1,
            _ => true,
        };
        if gives_up && !gap {
            // As specified: the answer's and the promotion's rebuilds wait for the tab's own writes.
            t.sync.waiting_rebuild = Some(Rebuild {
                passive,
                attempt: 0,
                then,
            });
            let epoch = t.epoch;
            self.at(PROMOTE_POLL_MS, Ev::RebuildPoll { tab, epoch });
            return Ok(());
        }
        if gives_up {
            t.sync.refresh_wanted = true;
            return self.rebuild_finished(tab, then);
        }
        t.sync.refresh_wanted = false;
        t.sync.rebuild_reads += 1;
        let enqueues_at_start = t.enqueues;
        let cost = self.store.op_ids().count() as u64 * REBUILD_US_PER_OP / 1000;
        let (stored, cursor) = self.store.load();
        let read = StoreRead {
            tab,
            epoch: self.tabs[tab].epoch,
            purpose: ReadPurpose::Rebuild(Rebuild {
                passive,
                attempt,
                then,
            }),
            stored,
            cursor,
            enqueues_at_start,
        };
        self.begin_read(read, cost);
        Ok(())
    }

    pub fn rebuild_read_done(
        &mut self,
        tab: usize,
        rebuild: Rebuild,
        stored: Stored,
        cursor: Option<String>,
        enqueues_at_start: u64,
    ) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        t.sync.rebuild_reads -= 1;
        if t.enqueues != enqueues_at_start || !t.queue.is_idle() {
            // An enqueue of its own went into the old engine during the read: read again.
            let Rebuild {
                passive,
                attempt,
                then,
            } = rebuild;
            return self.rebuild(tab, passive, attempt + 1, then);
        }
        self.install(tab, stored, cursor, rebuild.passive)?;
        self.rebuild_finished(tab, rebuild.then)
    }

    /// Replaces the tab's engine with one restored from a snapshot, carrying over its pause.
    fn install(
        &mut self,
        tab: usize,
        stored: Stored,
        cursor: Option<String>,
        passive: bool,
    ) -> Result<(), String> {
        let now = self.now(tab);
        let seed = self.rng.u64(..);
        let seen = stored
            .docs
            .iter()
            .map(|d| ((d.collection.clone(), d.key.clone()), version(d)))
            .collect();
        let mut engine = Engine::restore_from(self.profile.config.clone(), seed, stored, now)
            .map_err(|e| format!("restore failed: {e}"))?;
        engine.set_passive(passive);
        self.stats.rebuilds += 1;
        let t = &mut self.tabs[tab];
        let paused = t.engine.as_ref().is_some_and(Engine::is_paused);
        t.engine = Some(engine);
        t.cursor = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        t.seen = seen;
        self.check_confirmed(tab)?;
        if paused {
            let fx = self.tabs[tab].engine().pause(now);
            self.run(tab, fx)?;
        }
        if passive && !self.tabs[tab].online {
            // (The runtime leaves a follower's engine online: it shows the leader's status instead.
            // The status check here reads the follower's own engine, with the tab's switch.)
            let fx = self.tabs[tab].engine().set_online(false, now);
            self.run(tab, fx)?;
        }
        if passive {
            self.check_mirror(tab)?;
        }
        Ok(())
    }

    fn rebuild_finished(&mut self, tab: usize, then: Then) -> Result<(), String> {
        match then {
            Then::Nothing => Ok(()),
            Then::Refresh { started } => {
                self.tabs[tab].sync.last_refresh_ms = self.time - started;
                self.task_done(tab)
            }
            Then::Reply(answer) => {
                let t = &self.tabs[tab];
                let engine = t.engine.as_ref().expect("alive");
                if let Some(id) = answer.discarded {
                    if t.role == Role::Follower && engine.op(id).is_some() {
                        return Err(format!(
                            "tab {tab}'s forwarded discard of op {id} settled, and the tab still \
                             shows the op (its rebuild was deferred: {})",
                            t.sync.refresh_wanted
                        ));
                    }
                }
                self.task_done(tab)
            }
            Then::Promote { paused } => {
                self.promoted(tab, paused)?;
                self.task_done(tab)
            }
        }
    }

    /// A rebuild that waits for the tab's own writes looks again.
    pub fn rebuild_poll(&mut self, tab: usize) -> Result<(), String> {
        match self.tabs[tab].sync.waiting_rebuild.take() {
            Some(Rebuild {
                passive,
                attempt,
                then,
            }) => self.rebuild(tab, passive, attempt, then),
            None => Ok(()),
        }
    }

    /// The promotion waits for the tab's own writes to be idle, then rebuilds as the leader.
    pub fn promote_poll(&mut self, tab: usize) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        if !t.queue.is_idle() && t.sync.promote_polls < PROMOTE_POLLS {
            t.sync.promote_polls += 1;
            let epoch = t.epoch;
            self.at(PROMOTE_POLL_MS, Ev::PromotePoll { tab, epoch });
            return Ok(());
        }
        let paused = t.sync.leader_paused;
        t.sync.promote_role_set = true;
        self.rebuild(tab, false, 0, Then::Promote { paused })
    }

    fn promoted(&mut self, tab: usize, paused: Option<bool>) -> Result<(), String> {
        if self.tabs[tab]
            .engine
            .as_ref()
            .is_some_and(Engine::is_passive)
        {
            return Err(format!(
                "tab {tab} leads with a passive engine: its promotion's rebuild was deferred ({} \
                 polls; own writes on their way: {})",
                self.tabs[tab].sync.promote_polls,
                !self.tabs[tab].queue.is_idle()
            ));
        }
        self.tabs[tab].role = Role::Leader;
        self.note(format!("tab {tab} leads"));
        // Crash point: the new leader dies after its read, before anything it decided is stored.
        self.crash_point(tab);
        // One call's effects, as `tab_promote` runs them.
        let now = self.now(tab);
        let t = &mut self.tabs[tab];
        t.paused = paused == Some(true);
        let (paused, online) = (t.paused, t.online);
        let engine = t.engine();
        let mut fx = if paused {
            engine.pause(now)
        } else {
            Vec::new()
        };
        fx.extend(engine.set_online(online, now));
        fx.extend(engine.drain(now));
        self.run(tab, fx)?;
        let msg = Msg::Commit {
            records: Vec::new(),
            changed: true,
        };
        self.post(tab, msg);
        self.post_status(tab, true);
        self.start_scans(tab);
        while let Some(forward) = self.orphaned_commands.pop_front() {
            self.tabs[tab].sync.tasks.push_back(Task::Answer(forward));
        }
        Ok(())
    }

    /// The leader runs a forwarded command, and answers once what it wrote is durable.
    fn answer(&mut self, tab: usize, forward: Forward) -> Result<(), String> {
        let target = match &forward.cmd {
            Command::Discard(id) | Command::Resolve(id, _) => Some(*id),
            _ => None,
        };
        let known = |w: &World| {
            target.filter(|id| {
                w.tabs[tab]
                    .engine
                    .as_ref()
                    .is_some_and(|e| e.op(*id).is_some())
            })
        };
        let before = known(self);
        let calls = self.tabs[tab].sync.writing_calls;
        self.execute(tab, forward.cmd, true)?;
        let answer = Answer {
            to: forward.from,
            discarded: before.filter(|_| known(self).is_none()),
        };
        let t = &mut self.tabs[tab];
        if t.sync.writing_calls > calls && t.queue.durable_through() < t.sync.last_group {
            t.sync.answering = Some((t.sync.last_group, answer));
            return Ok(());
        }
        self.reply(tab, answer);
        self.task_done(tab)
    }

    /// After a commit of the leader's: the answer that waited for it leaves.
    pub fn answer_durable(&mut self, tab: usize) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        match t.sync.answering.take() {
            Some((group, answer)) if t.queue.durable_through() >= group => {
                self.reply(tab, answer);
                self.task_done(tab)
            }
            other => {
                t.sync.answering = other;
                Ok(())
            }
        }
    }

    fn reply(&mut self, tab: usize, answer: Answer) {
        let (to, epoch) = answer.to;
        if to != tab && self.alive(to, epoch) {
            self.send_message(tab, to, Msg::Reply(answer));
        }
    }

    /// Nothing of the protocol is under way: no message, post, read, task, refresh or promotion, every
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
                        && t.sync.tasks.is_empty()
                        && !t.sync.task_running
                        && !t.sync.refresh_timer
                        && !t.sync.refresh_wanted
                        && t.sync.rebuild_reads == 0
                        && t.sync.waiting_rebuild.is_none()
                        && t.role != Role::Promoting)
            })
    }

    /// A follower's mirror, while all is calm, shows what the leader shows: the same view of every
    /// entity, from the same ops in the same lane order.
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
