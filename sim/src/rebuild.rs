//! What a tab does with its messages, one at a time (`serially` in `pkg/tabs.js`), and its rebuilds
//! from the store (`rebuild` in `src/runtime/tabs.rs`).
//!
//! - **Refresh.** A follower rebuilds its passive engine from the store only after a commit message
//!   that `changed` stored state, throttled: the timer waits at least 10 ms and at least 4× the
//!   duration of its previous refresh. A rebuild's duration is an IndexedDB read (1–7 ms) plus
//!   [`REBUILD_US_PER_OP`] per stored op (parsing and restoring), so a follower of a leader with a big
//!   queue re-reads less often.
//! - **Rebuild.** It never waits and never reads twice. It notes `missed`, the tab's own enqueues
//!   whose commit has not landed (their futures still wait), and reads the store; the enqueues the tab
//!   makes while the read runs, and while it then reads its history (another read), join `missed`. A
//!   read that ends after the tab's role changed (a follower's refresh after a promotion) is dropped.
//!   Otherwise the engine is restored from the read (passive or not), takes `missed` over from the old
//!   one (`Engine::carry_over`: their place, their durability, their pending commit; no effects), is
//!   paused (a refresh: if the old one was; a promotion: as the last leader said, else as the old one
//!   was) and told the tab's online state, and only then replaces the old one; its effects run at once.
//! - **Answers.** The leader starts a forwarded command in its serial queue, in order, and the queue
//!   goes on at once; the answer leaves once what the command wrote is durable. The follower rebuilds
//!   before the command's promise settles: a discard the leader made is then no longer shown
//!   (checked).
//! - **Promotion.** Granted the lock, the runtime's role becomes leader, the tab rebuilds as an active
//!   engine (as above; ops stored in flight become pending and maybe applied, same keys, and its own
//!   unstored enqueues are carried over; the pause of the last status it heard from the leader, its
//!   `paused` flag, and the online state are set before the engine is installed), `drain`, reads its
//!   pull cursor (a read), then posts `commit { records: [],
//!   changed: true }` so followers re-read, and its status. Its read follows the grant, which follows the previous
//!   leader's death, so nothing it sends is older than that leader's last commit. Commands that waited
//!   for a leader run now.
//!
//! The leader's events, which followers re-emit after a refresh that follows them, are not modelled:
//! no check looks at a follower's events.

use outbox_core::{Effect, Engine, OpId, OpRecord, Stored};

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

/// Work a tab does in its serial queue.
#[derive(Clone, Debug)]
pub enum Task {
    /// `tab_adopt(records, after)`: records from a commit message and, for each, the op before it in
    /// its lane in the posting tab; no records and no `after`, the leader's scan.
    Adopt {
        records: Vec<OpRecord>,
        after: Option<Vec<OpId>>,
    },
    /// A follower's throttled refresh.
    Refresh,
    /// The lock was granted.
    Promote,
    /// The leader starts a command a follower forwarded; it answers later.
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
    /// The tab's own enqueues whose commit had not landed when the read began.
    missed: Vec<OpId>,
    then: Then,
    stage: Stage,
}

/// The reads of a rebuild, in order.
#[derive(Debug)]
enum Stage {
    /// The store, for the engine.
    Store,
    /// The history, before the engine restored from the store (kept here) is installed.
    History(Box<(Stored, Option<String>)>),
    /// A promotion's read of the pull cursor, before it posts.
    PullCursor,
}

#[derive(Debug)]
enum Then {
    Refresh { started: u64 },
    Promote { paused: Option<bool> },
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
        // tabs.js's role is a follower's until the promotion is done; the runtime's, until it starts.
        let follows = t.role != Role::Leader && !self.runtime_leads(tab);
        match task {
            Task::Adopt { records, after } => {
                if self.adopt_task(tab, records, after)? {
                    return self.task_done(tab);
                }
                Ok(())
            }
            Task::Refresh if follows => {
                let started = self.time;
                self.rebuild(tab, true, Then::Refresh { started })
            }
            Task::Reply(answer) if follows => self.rebuild(tab, true, Then::Reply(answer)),
            Task::Promote if self.tabs[tab].role == Role::Promoting => self.promote(tab),
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

    /// The runtime's `rebuild`: notes the tab's own unstored enqueues and reads the store.
    fn rebuild(&mut self, tab: usize, passive: bool, then: Then) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        let missed: Vec<OpId> = t.unstored.iter().copied().collect();
        t.sync.enqueued_during_read = Some(Vec::new());
        t.sync.rebuild_reads += 1;
        let cost = self.store.op_ids().count() as u64 * REBUILD_US_PER_OP / 1000;
        let (stored, cursor) = self.store.load();
        let read = StoreRead {
            tab,
            epoch: self.tabs[tab].epoch,
            purpose: ReadPurpose::Rebuild(Rebuild {
                passive,
                missed,
                then,
                stage: Stage::Store,
            }),
            stored,
            cursor,
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
    ) -> Result<(), String> {
        let t = &mut self.tabs[tab];
        t.sync.rebuild_reads -= 1;
        let Rebuild {
            passive,
            mut missed,
            then,
            stage,
        } = rebuild;
        let (stored, cursor) = match stage {
            Stage::Store => {
                // The history is read next, before anything is installed; enqueues go on joining
                // `missed` meanwhile.
                self.tabs[tab].sync.rebuild_reads += 1;
                let read = StoreRead {
                    tab,
                    epoch: self.tabs[tab].epoch,
                    purpose: ReadPurpose::Rebuild(Rebuild {
                        passive,
                        missed,
                        then,
                        stage: Stage::History(Box::new((stored, cursor))),
                    }),
                    stored: Stored::default(),
                    cursor: None,
                };
                self.begin_read(read, 0);
                return Ok(());
            }
            Stage::History(snapshot) => *snapshot,
            Stage::PullCursor => {
                let Then::Promote { .. } = then else {
                    unreachable!("only a promotion reads its pull cursor")
                };
                return self.lead(tab);
            }
        };
        let during = self.tabs[tab].sync.enqueued_during_read.take();
        // Promoted while a follower's read ran: that read is not wanted any more.
        if passive == self.runtime_leads(tab) {
            self.stats.dropped_reads += 1;
            return self.rebuild_finished(tab, then);
        }
        missed.extend(during.unwrap_or_default());
        self.stats.carried_over += missed
            .iter()
            .filter(|id| !stored.records.iter().any(|r| r.id == **id))
            .filter(|id| {
                self.tabs[tab]
                    .engine
                    .as_ref()
                    .is_some_and(|e| e.op(**id).is_some())
            })
            .count() as u64;
        let pause = {
            let old_paused = self.tabs[tab]
                .engine
                .as_ref()
                .is_some_and(Engine::is_paused);
            match &then {
                Then::Promote { paused } => paused.unwrap_or(old_paused),
                _ => old_paused,
            }
        };
        self.install(tab, stored, cursor, passive, &missed, pause)?;
        if passive {
            self.check_mirror(tab)?;
        }
        self.rebuild_finished(tab, then)
    }

    /// A rebuild's next read (history, pull cursor): an IndexedDB transaction's latency.
    fn rebuild_read(&mut self, tab: usize, passive: bool, then: Then, stage: Stage) {
        self.tabs[tab].sync.rebuild_reads += 1;
        let read = StoreRead {
            tab,
            epoch: self.tabs[tab].epoch,
            purpose: ReadPurpose::Rebuild(Rebuild {
                passive,
                missed: Vec::new(),
                then,
                stage,
            }),
            stored: Stored::default(),
            cursor: None,
        };
        self.begin_read(read, 0);
    }

    /// Replaces the tab's engine with one restored from a snapshot, carrying over the tab's own
    /// enqueues the read missed; pause and online state are set before it replaces the old one, and
    /// the effects of that run at once.
    fn install(
        &mut self,
        tab: usize,
        stored: Stored,
        cursor: Option<String>,
        passive: bool,
        missed: &[OpId],
        pause: bool,
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
        let mut fx: Vec<Effect> = Vec::new();
        if pause {
            fx.extend(engine.pause(now));
        }
        fx.extend(engine.set_online(self.tabs[tab].online, now));
        let t = &mut self.tabs[tab];
        if pause {
            t.paused = true;
        }
        let old = t.engine.take().expect("alive");
        engine.carry_over(&old, missed);
        t.engine = Some(engine);
        t.cursor = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        t.seen = seen;
        self.check_confirmed(tab)?;
        self.run(tab, fx)?;
        self.tabs[tab].sync.online_untold = false;
        Ok(())
    }

    fn rebuild_finished(&mut self, tab: usize, then: Then) -> Result<(), String> {
        match then {
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
                             shows the op"
                        ));
                    }
                }
                self.task_done(tab)
            }
            Then::Promote { .. } => self.promoted(tab),
        }
    }

    /// `tab_promote`: the runtime's role becomes leader, and the tab rebuilds as an active engine.
    fn promote(&mut self, tab: usize) -> Result<(), String> {
        let sync = &mut self.tabs[tab].sync;
        let paused = sync.leader_paused;
        sync.promote_started = true;
        self.rebuild(tab, false, Then::Promote { paused })
    }

    fn promoted(&mut self, tab: usize) -> Result<(), String> {
        if self.tabs[tab]
            .engine
            .as_ref()
            .is_some_and(Engine::is_passive)
        {
            return Err(format!("tab {tab} leads with a passive engine"));
        }
        self.tabs[tab].role = Role::Leader;
        self.note(format!("tab {tab} leads"));
        // Crash point: the new leader dies after its read, before anything it decided is stored.
        self.crash_point(tab);
        // The pause and the online state were set before the engine was installed; then `drain`.
        let now = self.now(tab);
        let fx = self.tabs[tab].engine().drain(now);
        self.run(tab, fx)?;
        self.rebuild_read(
            tab,
            false,
            Then::Promote { paused: None },
            Stage::PullCursor,
        );
        Ok(())
    }

    /// The promotion is done: the other tabs hear of the new leader, which scans, and runs the
    /// commands that waited for a leader.
    fn lead(&mut self, tab: usize) -> Result<(), String> {
        let msg = Msg::Commit {
            records: Vec::new(),
            after: Vec::new(),
            changed: true,
        };
        self.post(tab, msg);
        self.post_status(tab, true);
        self.start_scans(tab);
        while let Some(forward) = self.orphaned_commands.pop_front() {
            self.tabs[tab].sync.tasks.push_back(Task::Answer(forward));
        }
        self.task_done(tab)
    }

    /// The leader starts a forwarded command; its answer leaves once what it wrote is durable. The
    /// serial queue does not wait for it.
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
            t.sync.answering.push_back((t.sync.last_group, answer));
        } else {
            self.reply(tab, answer);
        }
        self.task_done(tab)
    }

    /// After a commit of the leader's: the answers that waited for it leave, in order.
    pub fn answer_durable(&mut self, tab: usize) {
        loop {
            let t = &mut self.tabs[tab];
            let through = t.queue.durable_through();
            match t.sync.answering.front() {
                Some((group, _)) if *group <= through => {
                    let (_, answer) = t.sync.answering.pop_front().expect("just seen");
                    // Posted after the awaited commit, so after that commit's own message.
                    let epoch = t.epoch;
                    self.in_transit += 1;
                    self.at(0, Ev::Reply { tab, epoch, answer });
                }
                _ => return,
            }
        }
    }

    pub fn reply(&mut self, tab: usize, answer: Answer) {
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
                        && t.sync.rebuild_reads == 0
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
