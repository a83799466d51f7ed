//! The order in which a runtime carries out the engine's effects.
//!
//! Storage effects go into commit groups, committed one at a time and in order; each `Send` is held
//! back until every write returned before it is durable (the barrier rule of [`Effect`]). Wake-ups and
//! events pass straight through. It does no I/O, so the browser runtime and the simulator share it, and
//! what the simulator proves about the order of effects is what the runtime does.
//!
//! A runtime's loop:
//! 1. hand every engine call's effects to [`EffectQueue::accept`] (an enqueue's to
//!    [`EffectQueue::accept_enqueue`]); run what it returns now;
//! 2. when storage is idle, [`EffectQueue::begin_commit`] closes the open group, and the runtime commits
//!    its writes in one transaction (so everything accepted while the previous commit ran shares one);
//! 3. report the result: [`EffectQueue::commit_succeeded`] releases the sends it held and names the
//!    enqueued ops now durable (`Engine::confirm_stored`); [`EffectQueue::commit_failed`] names the
//!    enqueued ops that must be rejected (`Engine::abandon_unstored`) and keeps every other write of
//!    the group for the next attempt, ahead of anything newer.
//!
//! The durable state is therefore always the engine's writes applied in order up to some point, minus
//! the writes of rejected enqueues; a request never leaves before what it carries is in it.

use std::collections::VecDeque;

use crate::effect::{Batch, Effect};
use crate::mark::BatchMark;
use crate::op::{OpId, OpRecord};
use crate::view::ConfirmedDoc;

/// The meta key [`Effect::PersistRetention`] is stored under.
pub const RETENTION_META_KEY: &str = "idempotency_retention_ms";

/// The meta key [`Effect::PersistClock`] is stored under.
pub const CLOCK_META_KEY: &str = "clock_mark";

/// One write of a commit group.
// Records are moved into a group once and out once; boxing them would add an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Insert or replace an op record.
    PutOp(OpRecord),
    /// Delete an op record (absent is fine).
    DeleteOp(OpId),
    /// Insert or replace an entity's confirmed document.
    PutDoc(ConfirmedDoc),
    /// Insert or replace a meta value (the retention, the clock mark, a batch's in-flight mark, the
    /// runtime's pull cursor): committed with the writes around it.
    PutMeta {
        /// Its name.
        key: String,
        /// Its value.
        value: String,
    },
    /// Delete a meta value (a batch's in-flight mark; absent is fine).
    DeleteMeta {
        /// Its name.
        key: String,
    },
}

/// A group of writes to commit in one transaction.
#[derive(Debug)]
pub struct Group {
    /// Identifies the group in [`EffectQueue::commit_succeeded`] / [`EffectQueue::commit_failed`].
    pub id: u64,
    /// The writes, in order.
    pub writes: Vec<Write>,
}

/// What [`EffectQueue::accept`] leaves for the runtime to do at once.
#[derive(Debug, Default)]
pub struct Accepted {
    /// The group the call's writes joined, if it wrote anything: its commit makes them durable.
    pub group: Option<u64>,
    /// Wake-ups, events, and sends that wait for nothing, in order.
    pub now: Vec<Effect>,
}

/// What a successful commit released.
#[derive(Debug, Default)]
pub struct Committed {
    /// Every group up to this id is now durable.
    pub durable_through: u64,
    /// Sends that were waiting for it: start them.
    pub sends: Vec<Batch>,
    /// Enqueued ops now durable: confirm them to the engine.
    pub stored: Vec<OpId>,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    writes: Vec<Write>,
    /// Ops whose enqueue wrote into this group: the commit confirms them, a failure rejects them.
    enqueued: Vec<OpId>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct EffectQueue {
    /// Collecting writes; not yet handed to storage.
    open: Option<Pending>,
    /// Handed to storage, its result not yet known (its writes are with the runtime).
    committing: Option<(u64, Vec<OpId>)>,
    /// Sends waiting for the group id they follow.
    held: VecDeque<(u64, Batch)>,
    next_id: u64,
    durable_through: u64,
    failures: u32,
}

impl EffectQueue {
    /// An empty queue.
    pub fn new() -> EffectQueue {
        EffectQueue {
            next_id: 1,
            ..EffectQueue::default()
        }
    }

    /// Sorts one engine call's effects (see the module docs).
    pub fn accept(&mut self, effects: Vec<Effect>) -> Accepted {
        let mut accepted = Accepted::default();
        for effect in effects {
            match effect {
                Effect::Persist(record) => accepted.group = Some(self.write(Write::PutOp(record))),
                Effect::Delete(id) => accepted.group = Some(self.write(Write::DeleteOp(id))),
                Effect::PersistDoc(doc) => accepted.group = Some(self.write(Write::PutDoc(doc))),
                Effect::PersistRetention(ms) => {
                    accepted.group = Some(self.write(Write::PutMeta {
                        key: RETENTION_META_KEY.to_owned(),
                        value: ms.to_string(),
                    }))
                }
                Effect::PersistClock(at) => {
                    accepted.group = Some(self.write(Write::PutMeta {
                        key: CLOCK_META_KEY.to_owned(),
                        value: at.to_string(),
                    }))
                }
                Effect::PersistMark(mark) => {
                    accepted.group = Some(self.write(Write::PutMeta {
                        key: BatchMark::meta_key(mark.ops[0].0),
                        value: mark.to_text(),
                    }))
                }
                Effect::DeleteMark(first) => {
                    accepted.group = Some(self.write(Write::DeleteMeta {
                        key: BatchMark::meta_key(first),
                    }))
                }
                Effect::Send(batch) => match self.newest_unfinished() {
                    Some(gate) => self.held.push_back((gate, batch)),
                    None => accepted.now.push(Effect::Send(batch)),
                },
                other => accepted.now.push(other),
            }
        }
        accepted
    }

    /// [`EffectQueue::accept`] for the effects of `Engine::enqueue`: the commit of the op's record
    /// confirms it, a failure rejects it.
    pub fn accept_enqueue(&mut self, id: OpId, effects: Vec<Effect>) -> Accepted {
        let accepted = self.accept(effects);
        if let Some(open) = &mut self.open {
            open.enqueued.push(id);
        }
        accepted
    }

    /// Adds writes of the runtime's own (the pull cursor) to the open group; returns its id.
    pub fn add_writes(&mut self, writes: Vec<Write>) -> Option<u64> {
        let mut group = None;
        for write in writes {
            group = Some(self.write(write));
        }
        group
    }

    /// The next group to commit, if storage is idle and anything is waiting. Writes accepted from now on
    /// go into a new group.
    pub fn begin_commit(&mut self) -> Option<Group> {
        if self.committing.is_some() {
            return None;
        }
        let open = self.open.take()?;
        self.committing = Some((open.id, open.enqueued));
        Some(Group {
            id: open.id,
            writes: open.writes,
        })
    }

    /// The group `id` is committed.
    pub fn commit_succeeded(&mut self, id: u64) -> Committed {
        let stored = match self.committing.take() {
            Some((committing, enqueued)) if committing == id => enqueued,
            other => {
                self.committing = other;
                return Committed::default();
            }
        };
        self.failures = 0;
        self.durable_through = self.durable_through.max(id);
        let mut sends = Vec::new();
        while let Some((gate, _)) = self.held.front() {
            if *gate > self.durable_through {
                break;
            }
            sends.push(self.held.pop_front().expect("checked above").1);
        }
        Committed {
            durable_through: self.durable_through,
            sends,
            stored,
        }
    }

    /// The commit of `group` failed and wrote nothing. Returns the ops whose enqueue it carried: the
    /// runtime rejects those enqueues and calls `Engine::abandon_unstored`. Every other write is kept,
    /// ahead of newer ones, for the next [`EffectQueue::begin_commit`]; the sends that follow it stay
    /// held until it lands.
    pub fn commit_failed(&mut self, group: Group) -> Vec<OpId> {
        let rejected = match self.committing.take() {
            Some((id, enqueued)) if id == group.id => enqueued,
            other => {
                self.committing = other;
                return Vec::new();
            }
        };
        self.failures = self.failures.saturating_add(1);
        let mut kept: Vec<Write> = group
            .writes
            .into_iter()
            .filter(|w| !matches!(w, Write::PutOp(r) if rejected.contains(&r.id)))
            .collect();
        match &mut self.open {
            // Newer writes follow the kept ones; the merged group takes the newer id, so the sends held
            // for either wait for it.
            Some(open) => {
                kept.append(&mut open.writes);
                open.writes = kept;
            }
            None if kept.is_empty() => {}
            None => {
                self.open = Some(Pending {
                    id: group.id,
                    writes: kept,
                    enqueued: Vec::new(),
                })
            }
        }
        if self.open.is_none() && self.held.iter().any(|(gate, _)| *gate <= group.id) {
            // Everything the held sends waited for was dropped with the rejected enqueues: an empty
            // group still has to "commit" to release them in order.
            self.open = Some(Pending {
                id: group.id,
                writes: Vec::new(),
                enqueued: Vec::new(),
            });
        }
        rejected
    }

    /// Consecutive failed commits (0 after a success): for the runtime's backoff, and its status.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// True when no write waits or commits and no send is held.
    pub fn is_idle(&self) -> bool {
        self.open.is_none() && self.committing.is_none() && self.held.is_empty()
    }

    /// Whether a group waits for [`EffectQueue::begin_commit`].
    pub fn has_open_group(&self) -> bool {
        self.open.is_some()
    }

    /// Every group up to this id is durable.
    pub fn durable_through(&self) -> u64 {
        self.durable_through
    }

    /// The sends held back, oldest first.
    pub fn held_sends(&self) -> impl Iterator<Item = &Batch> {
        self.held.iter().map(|(_, b)| b)
    }

    fn write(&mut self, write: Write) -> u64 {
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.open.insert(Pending {
                    id,
                    writes: Vec::new(),
                    enqueued: Vec::new(),
                })
            }
        };
        open.writes.push(write);
        open.id
    }

    /// The newest group not yet durable, which a send accepted now must wait for.
    fn newest_unfinished(&self) -> Option<u64> {
        self.open
            .as_ref()
            .map(|o| o.id)
            .or(self.committing.as_ref().map(|(id, _)| *id))
            .or_else(|| self.held.back().map(|(gate, _)| *gate))
    }
}

#[cfg(test)]
mod tests;
