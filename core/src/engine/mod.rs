//! The engine: the state machine that turns commands and observations into effects.
//!
//! # Indexes, and why every per-op step is O(log n)
//! * `ops`: every op by id ([`OpTable`], a slab with a hash index).
//! * `lanes`: one FIFO per entity ([`Lanes`]); only the head is ever scheduled.
//! * `ready`: lane heads that may be sent now, ordered by enqueue `seq` (oldest first, so no lane starves),
//!   then by op id: several tabs may hand out the same seq (see [`Engine::adopt`]), and no op may hide another.
//! * `waiting`: lane heads backing off, ordered by `(next_attempt_at, seq)`; advancing the clock pops
//!   the expired ones into `ready`.
//! * `batches`: ops in flight by batch id.
//!
//! Each op sits in at most one of `ready` / `waiting` (its [`Slot`]), so moving it is two B-tree
//! operations. Status counters are updated on every state change instead of being recounted.
//! * `errors`: the ops holding an error, by when they met it; the newest is `Status::last_error`.
//!
//! # The status, in O(log n)
//! Only an entity's first op is ever sent or halted, so every lane's head is exactly one of: in flight,
//! ready, waiting (a backoff), being stored (its enqueue not yet confirmed), or halted (failed, conflict,
//! unknown). A lane moves when its head is in flight, ready or being stored, so the state is `syncing`
//! exactly when there are more lanes than halted and waiting heads together. `held` counts the pending
//! ops waiting behind a halted head: the running sync has `pending + in_flight - held` ops left to settle.
//!
//! # Time
//! `now` is engine time in milliseconds. The runtime passes a clock that never goes backwards within a
//! session and is roughly comparable across sessions (`performance.timeOrigin + performance.now()`),
//! because backoff times are stored in the records. The engine ignores a `now` older than one it saw.
//! `wall_now` (Unix ms, `Date.now()`) is used only to judge HTTP dates when a response has no `Date`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use foldhash::fast::FixedState;
use serde_json::Value;

use crate::json::Json;
use uuid::Uuid;

use crate::config::{Config, ConflictStrategy};
use crate::effect::{Batch, Effect, SendOp};
use crate::error::CoreError;
use crate::event::{ConflictResolution, Event};
use crate::lane::Lanes;
use crate::mark::{BatchMark, MarkedOp};
use crate::op::{NewOp, OpError, OpId, OpKind, OpRecord, OpState, FORMAT_VERSION};
use crate::op_table::{FastMap, OpTable};
use crate::outcome::{classify, OutcomeClass};
use crate::random::{Random, Randomness};
use crate::rate_limit::{self, RateLimitInfo};
use crate::response::{Reply, Response};
use crate::retry::RetryDecision;
use crate::status::{Progress, Status, StorageError, SyncState};
use crate::view::{self, Change, Confirmed, ConfirmedDoc, Mutator, MutatorFn, View, ViewItem};

/// Where an op sits in the scheduling indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not scheduled: not a lane head, in flight, halted, or not yet durable.
    None,
    /// In `ready`, keyed by its seq.
    Ready,
    /// In `waiting`, keyed by `(next_attempt_at, seq)`.
    Waiting,
}

/// An op plus the bookkeeping that is not stored.
#[derive(Debug)]
struct Entry {
    record: OpRecord,
    /// The hash of the op's entity: finds its lane without hashing strings again.
    lane_hash: u64,
    /// Approximate wire size for `max_bytes`, or `UNSIZED` until a batch first needs it (sizing
    /// serializes the payload: not worth doing for every op at enqueue and restore). `u32` keeps the
    /// entry (read cold at every send) small.
    size: u32,
    /// The runtime confirmed the op is in storage. Ops are never sent before: an enqueue whose commit
    /// fails must leave no trace on the server.
    durable: bool,
    /// The one immediate retry after a 401 has been used.
    auth_retried: bool,
    /// The op goes alone in its batch: a batch holding it was refused as a whole, and only a request of
    /// its own tells whether the fault is its.
    solo: bool,
    /// The op's current attempt left after its horizon, guarded only by its precondition: a 412 then
    /// may be our own earlier write, so it means "unknown", not "conflict".
    sent_past_horizon: bool,
    slot: Slot,
    /// The op's place in `Engine::errors`, while its record holds an error.
    error_order: Option<u64>,
    /// The op's part of a mark ahead of its send ([`mark_ahead`]), while it stands on one.
    ahead: Option<Box<mark_ahead::Ahead>>,
}

/// What the server can be relied on to remember of an op that may have been applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Memory {
    /// Nothing to forget (never possibly applied), or the horizon has not passed: resend freely.
    Remembered,
    /// The key may be forgotten, but the op's precondition makes a second application impossible.
    ResendGuarded,
    /// The key may be forgotten and nothing guards a resend: the outcome is unknown.
    Forgotten,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    pending: usize,
    in_flight: usize,
    failed: usize,
    conflicts: usize,
    unknown: usize,
}

impl Counts {
    fn slot(&mut self, state: OpState) -> &mut usize {
        match state {
            OpState::Pending | OpState::Backoff => &mut self.pending,
            OpState::Inflight => &mut self.in_flight,
            OpState::Failed => &mut self.failed,
            OpState::Conflict => &mut self.conflicts,
            OpState::Unknown => &mut self.unknown,
        }
    }
}

/// Moves `record` to `to`, keeping the status counters right.
fn set_state(counts: &mut Counts, record: &mut OpRecord, to: OpState) {
    *counts.slot(record.state) -= 1;
    *counts.slot(to) += 1;
    record.state = to;
}

/// Ops in an order: `ready`, `waiting` and `errors` each key theirs by a triple ending in the op id.
/// One map type for the three, so the wasm holds one copy of the tree code, not three.
type OpOrder = BTreeMap<(u64, u64, OpId), OpId>;

/// The sans-IO outbox engine. See the crate docs for how a runtime drives it.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    random: Random,
    ops: OpTable<Entry>,
    lanes: Lanes,
    collections: HashSet<Arc<str>, FixedState>,
    /// Ops sendable now, in lane order: keyed `(seq, 0, id)`.
    ready: OpOrder,
    /// Ops in backoff, by when they may go: keyed `(at, seq, id)`.
    waiting: OpOrder,
    batches: FastMap<u64, Vec<OpId>>,
    next_seq: u64,
    next_batch: u64,
    now: u64,
    online: bool,
    paused: bool,
    blocked_until: Option<u64>,
    refresh_auth: bool,
    counts: Counts,
    /// Pending ops behind a halted (failed, conflicted, unknown) head: they cannot move by themselves.
    held: usize,
    /// Ops settled since the running sync started ([`crate::Progress::current`]).
    settled: usize,
    last_synced_at: Option<u64>,
    /// The ops whose record holds an error, by the order they met it (`next_error` is the next place).
    /// Keyed `(order, 0, id)`.
    errors: OpOrder,
    next_error: u64,
    last_status: Option<Status>,
    scheduled_wake: Option<u64>,
    busy: bool,
    view: View,
    mutator: Mutator,
    /// The server's idempotency retention as it last stated it (`Idempotency-Retention`), in ms.
    stated_retention_ms: Option<u64>,
    /// Rate limits in a row, engine-wide: each waits longer than the one before.
    rate_limit_streak: u32,
    /// Storage is failing: send nothing until it works again.
    storage_error: Option<StorageError>,
    /// Writes decided outside a call (by `restore`), emitted at the start of the next one.
    deferred: Vec<Effect>,
    /// A follower's engine: it mirrors the stored queue and adds its own tab's ops, and leaves sending,
    /// and every write about ops it did not make, to the leader ([`Engine::set_passive`]).
    passive: bool,
    /// When the clock was last stored ([`Effect::PersistClock`]).
    clock_marked: u64,
    /// `restore` found the clock before the stored mark.
    clock_set_back: bool,
    /// The most ops the server takes in one push (`413 batch-too-large`), once it said.
    learned_max_ops: Option<usize>,
    /// The last ack of each entity lately acked, for ops other tabs made on the same state that arrive
    /// after it ([`Engine::adopt`]).
    recent_acks: ack_chain::RecentAcks,
    /// The marks ahead of sends ([`mark_ahead`]) still stood on: each one's name and its ops.
    marks_ahead: Vec<(OpId, Vec<OpId>)>,
}

impl Engine {
    /// A new, empty engine. `randomness` drives UUIDs and jitter: a real client passes
    /// [`Randomness::Source`] (`crypto.getRandomValues`); tests pass a seed (`Engine::new(config, 42)`).
    /// A seed must differ every session, or a restarted engine would hand out the idempotency keys of
    /// ops it already delivered.
    pub fn new(config: Config, randomness: impl Into<Randomness>) -> Result<Engine, CoreError> {
        config.validate()?;
        let mut random = Random::new(randomness.into());
        // Batch ids start at a random point so a late reply to a previous engine's batch (same page,
        // engine re-created) cannot be taken for one of ours. Kept below 2^53: exact as a JS number.
        let first_batch = random.jitter.u64(0..1 << 52);
        Ok(Engine {
            config,
            random,
            ops: OpTable::default(),
            lanes: Lanes::default(),
            collections: HashSet::default(),
            ready: BTreeMap::new(),
            waiting: BTreeMap::new(),
            batches: FastMap::default(),
            next_seq: 0,
            next_batch: first_batch,
            now: 0,
            online: true,
            paused: false,
            blocked_until: None,
            refresh_auth: false,
            counts: Counts::default(),
            held: 0,
            settled: 0,
            last_synced_at: None,
            errors: BTreeMap::new(),
            next_error: 0,
            last_status: None,
            scheduled_wake: None,
            busy: false,
            view: View::default(),
            mutator: Mutator::default(),
            stated_retention_ms: None,
            rate_limit_streak: 0,
            storage_error: None,
            deferred: Vec::new(),
            passive: false,
            clock_marked: 0,
            clock_set_back: false,
            learned_max_ops: None,
            recent_acks: ack_chain::RecentAcks::default(),
            marks_ahead: Vec::new(),
        })
    }

    /// The optimistic view of one entity.
    pub fn view_item<'a>(&'a self, collection: &str, key: &'a str) -> Option<ViewItem<'a>> {
        self.view.item(collection, key)
    }

    /// The entities of a collection that exist in the optimistic view, ordered by key.
    pub fn view_list<'a>(&'a self, collection: &str) -> impl Iterator<Item = ViewItem<'a>> + 'a {
        self.view.list(collection)
    }

    /// The confirmed (server-acknowledged) state of an entity.
    pub fn confirmed(&self, collection: &str, key: &str) -> Option<ConfirmedDoc> {
        self.view
            .confirmed(collection, key)
            .map(|c| confirmed_doc(collection, key, c))
    }

    /// The status view-model: every field is read off the ops (the state by the table of [`SyncState`]).
    pub fn status(&self) -> Status {
        let c = self.counts;
        let halted = c.failed + c.conflicts + c.unknown;
        let moving = self.lanes.len() > halted + self.waiting.len();
        let state = if self.storage_error.is_some() {
            SyncState::Stalled
        } else if self.paused {
            SyncState::Paused
        } else if !self.online {
            SyncState::Offline
        } else if self.blocked_until.is_some() {
            SyncState::Blocked
        } else if moving {
            SyncState::Syncing
        } else if !self.waiting.is_empty() {
            SyncState::Retrying
        } else if halted > 0 {
            SyncState::Error
        } else {
            SyncState::Idle
        };
        let to_settle = self.to_settle();
        let progress = (to_settle > 0).then_some(Progress {
            current: self.settled,
            total: self.settled + to_settle,
        });
        Status {
            state,
            pending: c.pending,
            in_flight: c.in_flight,
            failed: c.failed,
            conflicts: c.conflicts,
            unknown: c.unknown,
            next_attempt_at: self.waiting.keys().next().map(|(at, _, _)| *at),
            blocked_until: self.blocked_until,
            last_synced_at: self.last_synced_at,
            last_error: self.errors.last_key_value().and_then(|(_, id)| {
                let record = &self.ops.get(id)?.record;
                record.last_error.clone()
            }),
            online: self.online,
            storage_error: self.storage_error.clone(),
            progress,
        }
    }

    /// Ops the running sync has still to settle: pending or in flight, and not held behind a halted op.
    fn to_settle(&self) -> usize {
        self.counts.pending + self.counts.in_flight - self.held
    }

    /// One op's record.
    pub fn op(&self, id: OpId) -> Option<&OpRecord> {
        self.ops.get(&id).map(|e| &e.record)
    }

    /// The ops of one entity in lane (enqueue) order: what the optimistic view applies on top of the
    /// confirmed doc.
    pub fn ops_for(&self, collection: &str, key: &str) -> Vec<&OpRecord> {
        let hash = self.lanes.hash(collection, key);
        let lane = self.lanes.get(hash, |head| {
            self.ops[&head].record.entity() == (collection, key)
        });
        lane.map_or_else(Vec::new, |lane| {
            lane.iter().map(|id| &self.ops[&id].record).collect()
        })
    }

    /// Every op, in no particular order.
    pub fn ops(&self) -> impl Iterator<Item = &OpRecord> {
        self.ops.values().map(|e| &e.record)
    }

    /// The engine time at which `tick` should next be called, if any.
    pub fn next_wake(&self) -> Option<u64> {
        let backoff = self.waiting.keys().next().map(|(at, _, _)| *at);
        // A passive engine never marks the clock (the leader does): its mark, once due, would stay due.
        let mark = (!self.passive && !self.ops.is_empty()).then(|| self.next_clock_mark());
        [backoff, self.blocked_until, mark]
            .into_iter()
            .flatten()
            .min()
    }

    /// Ids of the batches in flight.
    pub fn batches_in_flight(&self) -> impl Iterator<Item = u64> + '_ {
        self.batches.keys().copied()
    }

    /// One shared string per collection name: apps have a handful, and ops then carry no copy of it.
    pub(super) fn intern_collection(&mut self, name: String) -> Arc<str> {
        if let Some(shared) = self.collections.get(name.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.collections.insert(shared.clone());
        shared
    }

    /// [`Engine::intern_collection`] for a name read with a record (restored or adopted): the record's own
    /// copy becomes the shared one when the name is new, and no string is made either way.
    pub(super) fn intern_shared(&mut self, name: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.collections.get(&**name) {
            return shared.clone();
        }
        self.collections.insert(name.clone());
        name.clone()
    }

    /// A random UUID v4 from the engine's randomness, for ids the runtime makes itself (its client id).
    pub fn random_uuid(&mut self) -> Uuid {
        self.new_uuid()
    }

    pub(super) fn new_uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.random.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Adds a record to the end of its lane (no scheduling, no state counters; `held` if it lands behind
    /// a halted head). Returns whether it is its lane's head, the first op of a lane that was empty.
    pub(super) fn insert(&mut self, record: OpRecord, durable: bool) -> bool {
        let lane_hash = self.lanes.hash(&record.collection, &record.key);
        let head = self.push_lane(lane_hash, record.id, record.entity());
        self.add_entry(record, lane_hash, durable);
        head
    }

    /// Appends op `id` of `entity` to the end of its lane (`held` if it lands behind a halted head).
    /// Returns whether it is its lane's head, the first op of a lane that was empty.
    pub(super) fn push_lane(&mut self, lane_hash: u64, id: OpId, entity: (&str, &str)) -> bool {
        let ops = &self.ops;
        let mut head_halted = false;
        let head = self.lanes.push(lane_hash, id, |head| {
            let same = ops[&head].record.entity() == entity;
            head_halted = same && ops[&head].record.state.is_halted();
            same
        });
        if !head && head_halted {
            self.held += 1;
        }
        head
    }

    /// Puts an op's entry into the table (its lane holds it already).
    pub(super) fn add_entry(&mut self, record: OpRecord, lane_hash: u64, durable: bool) {
        let size = UNSIZED;
        self.ops.insert(
            record.id,
            Entry {
                record,
                lane_hash,
                size,
                durable,
                auth_retried: false,
                sent_past_horizon: false,
                solo: false,
                slot: Slot::None,
                error_order: None,
                ahead: None,
            },
        );
    }

    /// How many ops wait behind `head` in its lane.
    fn followers(&self, head: OpId) -> usize {
        let Some(entry) = self.ops.get(&head) else {
            return 0;
        };
        self.lanes
            .get(entry.lane_hash, |h| h == head)
            .map_or(0, |lane| lane.len() - 1)
    }

    /// Whether `id`'s lane is halted by its head (failed, in conflict, unknown).
    fn behind_halted(&self, id: OpId) -> bool {
        let Some(entry) = self.ops.get(&id) else {
            return false;
        };
        let ops = &self.ops;
        self.lanes
            .get(entry.lane_hash, |h| {
                ops[&h].record.entity() == entry.record.entity()
            })
            .and_then(|lane| lane.iter().next())
            .is_some_and(|head| head != id && ops[&head].record.state.is_halted())
    }

    /// The op's record just took a new error: it becomes the newest in `errors`.
    fn note_error(&mut self, id: OpId) {
        let order = self.next_error;
        self.next_error += 1;
        let Some(entry) = self.ops.get_mut(&id) else {
            return;
        };
        if let Some(old) = entry.error_order.replace(order) {
            self.errors.remove(&(old, 0, id));
        }
        self.errors.insert((order, 0, id), id);
    }

    /// Takes an op out of the table for good (acked, dropped, discarded), with its counter and error.
    fn take_entry(&mut self, id: OpId) -> Entry {
        let entry = self
            .ops
            .remove(&id)
            .expect("the caller checked the op exists");
        *self.counts.slot(entry.record.state) -= 1;
        if let Some(order) = entry.error_order {
            self.errors.remove(&(order, 0, id));
        }
        entry
    }

    /// Recomputes an entity's view from its confirmed state and its lane, and tells the app if it
    /// changed.
    pub(super) fn refold_entity(
        &mut self,
        collection: &Arc<str>,
        key: &Arc<str>,
        fx: &mut Vec<Effect>,
    ) {
        let ops = &self.ops;
        let lane = self.lanes.get(self.lanes.hash(collection, key), |head| {
            let r = &ops[&head].record;
            *r.collection == **collection && *r.key == **key
        });
        let records = lane
            .into_iter()
            .flat_map(|l| l.iter())
            .map(|id| &ops[&id].record);
        if self
            .view
            .refold(collection, key, records, &mut self.mutator)
            == Change::Changed
        {
            fx.push(Effect::Emit(Event::ViewChanged {
                collection: collection.clone(),
                key: key.clone(),
            }));
        }
    }
}

pub(super) fn confirmed_doc(collection: &str, key: &str, confirmed: &Confirmed) -> ConfirmedDoc {
    ConfirmedDoc {
        collection: collection.to_owned(),
        key: key.to_owned(),
        version: confirmed.version.clone(),
        doc: confirmed.doc.clone().unwrap_or_default(),
        deleted: confirmed.doc.is_none(),
        acks: Vec::new(),
    }
}

/// An entry's `size` before it is first needed.
pub(super) const UNSIZED: u32 = u32::MAX;

pub(super) fn wire_size(record: &OpRecord) -> u32 {
    // Capped one below `UNSIZED`: a payload that big is over any `max_bytes` either way.
    u32::try_from(record.wire_size()).map_or(UNSIZED - 1, |n| n.min(UNSIZED - 1))
}

mod ack_chain;
mod adopt;
mod commands;
mod conflicts;
mod holding;
mod mark_ahead;
mod restore;

pub use restore::{Restoring, Stored, StoredMeta};
mod sending;
mod settling;

#[cfg(test)]
mod mark_ahead_tests;
#[cfg(test)]
mod mark_tests;
#[cfg(test)]
mod pacing_tests;
#[cfg(test)]
mod restore_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod view_tests;
