//! The order in which a runtime carries out the engine's effects.
//!
//! Storage effects go into commit groups, committed one at a time and in order; each `Send` is held
//! back until the writes it depends on are durable (the barrier rule of [`Effect`]): the latest write
//! of each of its ops (its record, or a mark that names it) and every meta write before it (the clock,
//! the retention, the pull cursor). Another op's ack, made durable later, does not hold it back: a
//! crash can only lose that ack, and the other op is then resent under its own key and replayed.
//! Wake-ups and events pass straight through. It does no I/O, so the browser runtime and the simulator
//! share it, and what the simulator proves about the order of effects is what the runtime does.
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
    /// The group of each op's writes (its record, or a mark naming it) not yet known durable, in
    /// order (a list: it is emptied at every commit, and a map type of its own would cost the wasm more).
    op_writes: Vec<(OpId, u64)>,
    /// The group of the latest meta write (clock, retention, cursor) not yet known durable.
    meta_write: Option<u64>,
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
            let group = match effect {
                Effect::Persist(record) => {
                    let id = record.id;
                    self.write_op(id, Write::PutOp(record))
                }
                Effect::Delete(id) => self.write_op(id, Write::DeleteOp(id)),
                Effect::PersistDoc(doc) => self.write(Write::PutDoc(doc)),
                Effect::PersistRetention(ms) => self.write_meta(RETENTION_META_KEY, ms.to_string()),
                Effect::PersistClock(at) => self.write_meta(CLOCK_META_KEY, at.to_string()),
                Effect::PersistMark(mark) => {
                    let group = self.write(Write::PutMeta {
                        key: BatchMark::meta_key(mark.ops[0].0),
                        value: mark.to_text(),
                    });
                    self.op_writes
                        .extend(mark.ops.iter().map(|op| (op.0, group)));
                    group
                }
                Effect::DeleteMark(first) => self.write(Write::DeleteMeta {
                    key: BatchMark::meta_key(first),
                }),
                Effect::Send(batch) => {
                    match self.gate(&batch) {
                        Some(gate) => self.held.push_back((gate, batch)),
                        None => accepted.now.push(Effect::Send(batch)),
                    }
                    continue;
                }
                other => {
                    accepted.now.push(other);
                    continue;
                }
            };
            accepted.group = Some(group);
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
            let id = self.write(write);
            // The runtime's own writes are meta values: later sends wait for them.
            self.meta_write = Some(id);
            group = Some(id);
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
        let through = self.durable_through;
        self.op_writes.retain(|(_, group)| *group > through);
        self.meta_write = self.meta_write.filter(|group| *group > through);
        // In the order they were accepted; a send whose own writes landed earlier may pass one held
        // for a later group (never one of its lane: a lane has one op in flight).
        let mut sends = Vec::new();
        let mut later = VecDeque::with_capacity(self.held.len());
        for (gate, batch) in self.held.drain(..) {
            if gate <= through {
                sends.push(batch);
            } else {
                later.push_back((gate, batch));
            }
        }
        self.held = later;
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
                let merged = open.id;
                let moved = |gate: &mut u64| {
                    if *gate == group.id {
                        *gate = merged;
                    }
                };
                self.held.iter_mut().for_each(|(gate, _)| moved(gate));
                self.op_writes.iter_mut().for_each(|(_, gate)| moved(gate));
                if let Some(gate) = self.meta_write.as_mut() {
                    moved(gate);
                }
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

    fn write_op(&mut self, id: OpId, write: Write) -> u64 {
        let group = self.write(write);
        self.op_writes.push((id, group));
        group
    }

    fn write_meta(&mut self, key: &str, value: String) -> u64 {
        let group = self.write(Write::PutMeta {
            key: key.to_owned(),
            value,
        });
        self.meta_write = Some(group);
        group
    }

    /// The group a send accepted now must wait for: the newest of its ops' latest writes and the
    /// latest meta write that are not yet durable; `None` when they all are.
    fn gate(&self, batch: &Batch) -> Option<u64> {
        self.op_writes
            .iter()
            .filter(|(id, _)| batch.ops.iter().any(|op| op.id == *id))
            .map(|(_, group)| *group)
            .chain(self.meta_write)
            .filter(|group| *group > self.durable_through)
            .max()
    }
}

#[cfg(test)]
mod tests;
