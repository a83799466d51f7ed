//! The engine: the state machine that turns commands and observations into effects.
//!
//! # Indexes, and why every per-op step is O(log n)
//! * `ops`: every op by id ([`OpTable`], a slab with a hash index).
//! * `lanes`: one FIFO per entity ([`Lanes`]); only the head is ever scheduled.
//! * `ready`: lane heads that may be sent now, ordered by enqueue `seq` (oldest first, so no lane starves).
//! * `waiting`: lane heads backing off, ordered by `(next_attempt_at, seq)`; advancing the clock pops
//!   the expired ones into `ready`.
//! * `batches`: ops in flight by batch id.
//!
//! Each op sits in at most one of `ready` / `waiting` (its [`Slot`]), so moving it is two B-tree
//! operations. Status counters are updated on every state change instead of being recounted.
//!
//! # Time
//! `now` is engine time in milliseconds. The runtime passes a clock that never goes backwards within a
//! session and is roughly comparable across sessions (`performance.timeOrigin + performance.now()`),
//! because backoff times are stored in the records. The engine ignores a `now` older than one it saw.
//! `wall_now` (Unix ms, `Date.now()`) is used only to judge HTTP dates when a response has no `Date`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::FixedState;
use serde_json::Value;
use uuid::Uuid;

use crate::config::{Config, ConflictStrategy};
use crate::effect::{Batch, Effect, SendOp};
use crate::error::CoreError;
use crate::event::{ConflictResolution, Event};
use crate::lane::Lanes;
use crate::op::{NewOp, OpError, OpId, OpKind, OpRecord, OpState, FORMAT_VERSION};
use crate::op_table::{FastMap, OpTable};
use crate::outcome::{classify, OutcomeClass};
use crate::rate_limit::{self, RateLimitInfo};
use crate::response::{Reply, Response};
use crate::retry::RetryDecision;
use crate::status::{Status, SyncState};
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
    /// Approximate wire size for `max_bytes`; `u32` keeps the entry (read cold at every send) small.
    size: u32,
    /// The runtime confirmed the op is in storage. Ops are never sent before: an enqueue whose commit
    /// fails must leave no trace on the server.
    durable: bool,
    /// The one immediate retry after a 401 has been used.
    auth_retried: bool,
    slot: Slot,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    pending: usize,
    in_flight: usize,
    failed: usize,
    conflicts: usize,
}

impl Counts {
    fn slot(&mut self, state: OpState) -> &mut usize {
        match state {
            OpState::Pending | OpState::Backoff => &mut self.pending,
            OpState::Inflight => &mut self.in_flight,
            OpState::Failed => &mut self.failed,
            OpState::Conflict => &mut self.conflicts,
        }
    }
}

/// Moves `record` to `to`, keeping the status counters right.
fn set_state(counts: &mut Counts, record: &mut OpRecord, to: OpState) {
    *counts.slot(record.state) -= 1;
    *counts.slot(to) += 1;
    record.state = to;
}

/// The sans-IO outbox engine. See the crate docs for how a runtime drives it.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    rng: fastrand::Rng,
    ops: OpTable<Entry>,
    lanes: Lanes,
    collections: HashSet<Arc<str>, FixedState>,
    ready: BTreeMap<u64, OpId>,
    waiting: BTreeMap<(u64, u64), OpId>,
    batches: FastMap<u64, Vec<OpId>>,
    next_seq: u64,
    next_batch: u64,
    now: u64,
    online: bool,
    paused: bool,
    blocked_until: Option<u64>,
    refresh_auth: bool,
    counts: Counts,
    last_synced_at: Option<u64>,
    last_error: Option<OpError>,
    last_status: Option<Status>,
    scheduled_wake: Option<u64>,
    busy: bool,
    view: View,
    mutator: Mutator,
}

impl Engine {
    /// A new, empty engine. `seed` drives jitter and UUIDs: the runtime must pass a fresh random seed
    /// each session (e.g. from `crypto.getRandomValues`), or a restarted engine would hand out the
    /// idempotency keys of ops it already delivered.
    pub fn new(config: Config, seed: u64) -> Result<Engine, CoreError> {
        config.validate()?;
        let mut rng = fastrand::Rng::with_seed(seed);
        // Batch ids start at a random point so a late reply to a previous engine's batch (same page,
        // engine re-created) cannot be taken for one of ours. Kept below 2^53: exact as a JS number.
        let first_batch = rng.u64(0..1 << 52);
        Ok(Engine {
            config,
            rng,
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
            last_synced_at: None,
            last_error: None,
            last_status: None,
            scheduled_wake: None,
            busy: false,
            view: View::default(),
            mutator: Mutator::default(),
        })
    }

    /// Rebuilds the engine from the records storage gave back. Ops a crash left `inflight` become ready
    /// again with the same idempotency key. Call [`Engine::drain`] next to start sending.
    pub fn restore(config: Config, seed: u64, records: Vec<OpRecord>) -> Result<Engine, CoreError> {
        Self::restore_with_docs(config, seed, records, Vec::new())
    }

    /// [`Engine::restore`] with the confirmed documents storage gave back too, so the optimistic view
    /// (confirmed + pending) is whole again after a reload.
    pub fn restore_with_docs(
        config: Config,
        seed: u64,
        mut records: Vec<OpRecord>,
        docs: Vec<ConfirmedDoc>,
    ) -> Result<Engine, CoreError> {
        let mut engine = Engine::new(config, seed)?;
        let mut entities = Vec::with_capacity(docs.len());
        for doc in docs {
            let (collection, key) = (
                engine.intern_collection(doc.collection),
                Arc::<str>::from(doc.key),
            );
            let confirmed = Confirmed {
                version: doc.version,
                doc: (!doc.deleted).then_some(doc.doc),
            };
            engine.view.set_confirmed(&collection, &key, confirmed);
            entities.push((collection, key));
        }
        records.sort_by_key(|r| r.seq);
        for mut record in records {
            if record.format_version > FORMAT_VERSION {
                return Err(CoreError::UnsupportedFormat {
                    found: record.format_version,
                    supported: FORMAT_VERSION,
                });
            }
            if engine.ops.contains_key(&record.id) {
                return Err(CoreError::DuplicateOp(record.id));
            }
            record.collection = engine.intern_collection(record.collection.to_string());
            if record.state == OpState::Inflight {
                // The response was lost with the tab: the server may have applied it.
                record.state = OpState::Pending;
                record.maybe_applied = true;
            }
            if record.last_error.as_ref().map(|e| e.class) == Some(OutcomeClass::RateLimited) {
                // The block itself is not stored, but the rate-limited ops carry its end: a reload
                // must not turn a 429 into a burst.
                engine.blocked_until = engine.blocked_until.max(record.not_before);
            }
            engine.next_seq = engine.next_seq.max(record.seq + 1);
            *engine.counts.slot(record.state) += 1;
            engine.insert(record, true);
        }
        let heads: Vec<OpId> = engine.lanes.heads().collect();
        for head in heads {
            engine.schedule_if_head(head);
            let record = &engine.ops[&head].record;
            entities.push((record.collection.clone(), record.key.clone()));
        }
        // Nothing is reported for the rebuilt view: it is the state the app starts from.
        let mut ignored = Vec::new();
        for (collection, key) in entities {
            engine.refold_entity(&collection, &key, &mut ignored);
        }
        engine.busy = engine.counts.pending + engine.counts.in_flight > 0;
        Ok(engine)
    }

    // ----------------------------------------------------------------------------------------------
    // Commands
    // ----------------------------------------------------------------------------------------------

    /// Adds an op to the end of its entity's lane. Returns its id and the effects, starting with the
    /// `Persist` the runtime must commit; the op is not sent until [`Engine::confirm_stored`].
    pub fn enqueue(&mut self, op: NewOp, now: u64) -> Result<(OpId, Vec<Effect>), CoreError> {
        if op.collection.is_empty() || op.key.is_empty() {
            return Err(CoreError::InvalidEntity);
        }
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        let id = OpId(self.new_uuid());
        let collection = self.intern_collection(op.collection);
        let key: Arc<str> = Arc::from(op.key);
        // No base version given: make the op conditional on the version the user saw, so a concurrent
        // change on the server is a conflict rather than silently overwritten.
        let auto_base = op.base_version.is_none() && self.config.collection(&collection).versioned;
        let base_version = match (&op.base_version, auto_base) {
            (Some(given), _) => Some(given.clone()),
            (None, true) => self
                .view
                .confirmed(&collection, &key)
                .and_then(|c| c.version.clone()),
            (None, false) => None,
        };
        let auto_base = auto_base && base_version.is_some();
        let record = OpRecord {
            format_version: FORMAT_VERSION,
            id,
            idempotency_key: self.new_uuid(),
            seq: self.next_seq,
            collection,
            key,
            kind: op.kind,
            payload: Arc::new(op.payload),
            base_version,
            created_at: self.now,
            attempts: 0,
            state: OpState::Pending,
            last_error: None,
            next_attempt_at: None,
            not_before: None,
            retried_at: None,
            server_doc: None,
            maybe_applied: false,
            auto_base,
            server_version: None,
        };
        self.next_seq += 1;
        self.counts.pending += 1;
        fx.push(Effect::Persist(record.clone()));
        fx.push(Effect::Emit(Event::Enqueued {
            id,
            collection: record.collection.clone(),
            key: record.key.clone(),
        }));
        self.view.push_op(&record, &mut self.mutator);
        fx.push(Effect::Emit(Event::ViewChanged {
            collection: record.collection.clone(),
            key: record.key.clone(),
        }));
        self.insert(record, false);
        self.finish(&mut fx);
        Ok((id, fx))
    }

    /// The runtime committed these ops' `Persist` effects from `enqueue`: they may now be sent.
    /// Ids that are unknown (e.g. discarded meanwhile) are ignored.
    pub fn confirm_stored(&mut self, ids: &[OpId], now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        for id in ids {
            if let Some(entry) = self.ops.get_mut(id) {
                if !entry.durable {
                    entry.durable = true;
                    self.schedule_if_head(*id);
                }
            }
        }
        self.finish(&mut fx);
        fx
    }

    /// Sends whatever is ready now (respecting backoff, rate limits, pause and offline).
    pub fn drain(&mut self, now: u64) -> Vec<Effect> {
        self.tick(now)
    }

    /// The clock moved (a scheduled wake-up fired): expire backoffs and blocks, then send what is ready.
    pub fn tick(&mut self, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        self.finish(&mut fx);
        fx
    }

    /// Makes one op ready now. A failed or conflicted op gets a fresh attempt budget; its idempotency key
    /// is rotated only if no earlier attempt could have been applied (see [`OpRecord::maybe_applied`]).
    /// A backing-off op skips the rest of its backoff, but never the server's `Retry-After`.
    pub fn retry(&mut self, id: OpId, now: u64) -> Result<Vec<Effect>, CoreError> {
        let state = self
            .ops
            .get(&id)
            .ok_or(CoreError::UnknownOp(id))?
            .record
            .state;
        if state == OpState::Inflight {
            return Err(CoreError::InFlight(id));
        }
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        self.retry_one(id, &mut fx);
        self.finish(&mut fx);
        Ok(fx)
    }

    /// [`Engine::retry`] for every failed, conflicted and backing-off op. O(number of ops).
    pub fn retry_all(&mut self, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        let mut ids: Vec<(u64, OpId)> = self
            .ops
            .values()
            .filter(|e| {
                matches!(
                    e.record.state,
                    OpState::Failed | OpState::Conflict | OpState::Backoff
                )
            })
            .map(|e| (e.record.seq, e.record.id))
            .collect();
        ids.sort_unstable();
        for (_, id) in ids {
            self.retry_one(id, &mut fx);
        }
        self.finish(&mut fx);
        fx
    }

    /// Replaces the payload and base version of a conflicted or failed op (the app's resolution, e.g.
    /// rebased on the server's doc) and retries it under a new idempotency key.
    pub fn resolve(
        &mut self,
        id: OpId,
        payload: Value,
        base_version: Option<String>,
        now: u64,
    ) -> Result<Vec<Effect>, CoreError> {
        let entry = self.ops.get_mut(&id).ok_or(CoreError::UnknownOp(id))?;
        let state = entry.record.state;
        if !matches!(state, OpState::Failed | OpState::Conflict) {
            return Err(CoreError::WrongState { id, state });
        }
        entry.record.payload = Arc::new(payload);
        entry.record.base_version = base_version;
        entry.size = wire_size(&entry.record);
        // A resolution is a new write, made against the server's current version (which includes the
        // old attempt if it was applied), so it gets a new idempotency key: under the old one the server
        // would replay the old outcome or refuse the changed payload.
        entry.record.maybe_applied = false;
        self.retry(id, now)
    }

    /// Removes an op for good: the app gave up on it. Unblocks its lane if it was the head. Refused
    /// while the op is in flight.
    pub fn discard(&mut self, id: OpId, now: u64) -> Result<Vec<Effect>, CoreError> {
        let entry = self.ops.get(&id).ok_or(CoreError::UnknownOp(id))?;
        if entry.record.state == OpState::Inflight {
            return Err(CoreError::InFlight(id));
        }
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        let record = self.remove_op(id, &mut fx);
        fx.push(Effect::Delete(id));
        fx.push(Effect::Emit(Event::Discarded {
            id,
            collection: record.collection,
            key: record.key,
        }));
        self.finish(&mut fx);
        Ok(fx)
    }

    /// The enqueue of these ops never reached storage (its commit failed): take them back out, as if
    /// they had never been enqueued. Nothing is deleted and no `discarded` event is told, since for the
    /// app the enqueue simply failed; the view rolls back. Ops already confirmed stored are left alone.
    pub fn abandon_unstored(&mut self, ids: &[OpId], now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        for id in ids {
            if self.ops.get(id).is_some_and(|e| !e.durable) {
                self.remove_op(*id, &mut fx);
            }
        }
        self.finish(&mut fx);
        fx
    }

    /// Takes an op out of the engine (not in flight): its indexes, counters and lane, then refolds its
    /// entity's view.
    fn remove_op(&mut self, id: OpId, fx: &mut Vec<Effect>) -> OpRecord {
        self.unslot(id);
        let entry = self
            .ops
            .remove(&id)
            .expect("the caller checked the op exists");
        *self.counts.slot(entry.record.state) -= 1;
        if self.lanes.is_head(entry.lane_hash, id) {
            self.remove_head(entry.lane_hash, id);
        } else {
            self.lanes.remove_behind_head(entry.lane_hash, id);
        }
        self.refold_entity(&entry.record.collection, &entry.record.key, fx);
        entry.record
    }

    /// Stops sending (ops in flight still complete).
    pub fn pause(&mut self, now: u64) -> Vec<Effect> {
        self.paused = true;
        self.tick(now)
    }

    /// Starts sending again.
    pub fn resume(&mut self, now: u64) -> Vec<Effect> {
        self.paused = false;
        self.tick(now)
    }

    /// The network went up or down. Coming online retries backing-off ops at once, except where the
    /// server asked for a later time.
    pub fn set_online(&mut self, online: bool, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        if online && !self.online {
            let waiting: Vec<OpId> = self.waiting.values().copied().collect();
            for id in waiting {
                self.unslot(id);
                let now = self.now;
                let entry = self.ops.get_mut(&id).expect("waiting op exists");
                entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
                self.schedule_if_head(id);
            }
        }
        self.online = online;
        self.finish(&mut fx);
        fx
    }

    // ----------------------------------------------------------------------------------------------
    // Observations
    // ----------------------------------------------------------------------------------------------

    /// The transport got a reply for a batch. See [`Reply`] for how per-op results are matched.
    pub fn on_reply(
        &mut self,
        batch_id: u64,
        reply: &Reply,
        now: u64,
        wall_now: u64,
    ) -> Result<Vec<Effect>, CoreError> {
        let mut fx = Vec::new();
        let ids = self.take_batch(batch_id, now, &mut fx)?;
        self.warm_up(ids.iter());
        let envelope_info = rate_limit::parse(&reply.response, wall_now);
        let by_id: Option<HashMap<OpId, &Response>> = reply
            .results
            .as_ref()
            .map(|results| results.iter().map(|r| (r.id, &r.response)).collect());
        for id in ids {
            let (response, info) = match &by_id {
                None => (Some(&reply.response), envelope_info),
                Some(by_id) => match by_id.get(&id) {
                    Some(r) if r.is_success() => (Some(*r), RateLimitInfo::default()),
                    Some(r) => (Some(*r), rate_limit::parse(r, wall_now)),
                    None => (None, RateLimitInfo::default()),
                },
            };
            self.settle(id, response, None, info, &mut fx);
        }
        if let Some(ms) = envelope_info.exhausted_for_ms() {
            self.block(self.now.saturating_add(ms), &mut fx);
        }
        self.finish(&mut fx);
        Ok(fx)
    }

    /// The send failed without a response (network error, timeout, or the response was lost).
    pub fn on_network_error(&mut self, batch_id: u64, now: u64) -> Result<Vec<Effect>, CoreError> {
        self.on_no_answer(batch_id, None, now)
    }

    /// Like [`Engine::on_network_error`], with the transport's own words for what happened ("timed out
    /// after 15000 ms"), which become the ops' `last_error` message.
    pub fn on_no_answer(
        &mut self,
        batch_id: u64,
        reason: Option<&str>,
        now: u64,
    ) -> Result<Vec<Effect>, CoreError> {
        let mut fx = Vec::new();
        let ids = self.take_batch(batch_id, now, &mut fx)?;
        for id in ids {
            self.settle(id, None, reason, RateLimitInfo::default(), &mut fx);
        }
        self.finish(&mut fx);
        Ok(fx)
    }

    /// Documents from the server that did not come with an ack: a pull, or the app's own loading
    /// (`ingest`). Each replaces the confirmed state only if its version is newer than the one held
    /// ([`view::is_newer`]); the entity's pending ops are then replayed on top of it (rebase).
    pub fn ingest(&mut self, docs: Vec<ConfirmedDoc>, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        for doc in docs {
            let collection = self.intern_collection(doc.collection);
            let key: Arc<str> = Arc::from(doc.key);
            let held = self
                .view
                .confirmed(&collection, &key)
                .and_then(|c| c.version.as_deref());
            if !view::is_newer(doc.version.as_deref(), held) {
                continue;
            }
            let confirmed = Confirmed {
                version: doc.version,
                doc: (!doc.deleted).then_some(doc.doc),
            };
            fx.push(Effect::PersistDoc(confirmed_doc(
                &collection,
                &key,
                &confirmed,
            )));
            self.view.set_confirmed(&collection, &key, confirmed);
            self.refold_entity(&collection, &key, &mut fx);
        }
        self.finish(&mut fx);
        fx
    }

    /// Plugs in the function that applies custom ops to the view (the app's registered mutations).
    /// Call [`Engine::refresh_view`] after, so ops already queued are shown through it.
    pub fn set_mutator(&mut self, mutator: Box<MutatorFn>) {
        self.mutator.set(mutator);
    }

    /// Recomputes the view of every entity with queued ops.
    pub fn refresh_view(&mut self, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        let entities: Vec<(Arc<str>, Arc<str>)> = self
            .lanes
            .heads()
            .map(|id| {
                let r = &self.ops[&id].record;
                (r.collection.clone(), r.key.clone())
            })
            .collect();
        for (collection, key) in entities {
            self.refold_entity(&collection, &key, &mut fx);
        }
        self.finish(&mut fx);
        fx
    }

    /// A response to a request the runtime made on its own (a pull): its rate-limit headers and a 429
    /// block sending exactly as a push's would, so pull and push share one budget.
    pub fn observe(&mut self, response: &Response, now: u64, wall_now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        let info = rate_limit::parse(response, wall_now);
        let limited =
            response.status == 429 || (response.status == 503 && info.retry_after_ms.is_some());
        if limited {
            let delay = info
                .retry_after_ms
                .or(info.reset_ms)
                .unwrap_or_else(|| self.config.retry.jittered_delay_ms(1, &mut self.rng));
            self.block(self.now.saturating_add(delay), &mut fx);
        }
        if let Some(ms) = info.exhausted_for_ms() {
            self.block(self.now.saturating_add(ms), &mut fx);
        }
        self.finish(&mut fx);
        fx
    }

    /// Whether a request may go out now: online, not paused, not rate-limited. The runtime asks before
    /// a pull.
    pub fn can_send(&self) -> bool {
        self.online && !self.paused && self.blocked_until.is_none()
    }

    // ----------------------------------------------------------------------------------------------
    // Queries
    // ----------------------------------------------------------------------------------------------

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

    /// The status view-model.
    pub fn status(&self) -> Status {
        let c = self.counts;
        let state = if self.paused {
            SyncState::Paused
        } else if !self.online {
            SyncState::Offline
        } else if self.blocked_until.is_some() {
            SyncState::Blocked
        } else if c.pending + c.in_flight > 0 {
            SyncState::Syncing
        } else if c.failed + c.conflicts > 0 {
            SyncState::Error
        } else {
            SyncState::Idle
        };
        Status {
            state,
            pending: c.pending,
            in_flight: c.in_flight,
            failed: c.failed,
            conflicts: c.conflicts,
            next_attempt_at: self.waiting.keys().next().map(|(at, _)| *at),
            blocked_until: self.blocked_until,
            last_synced_at: self.last_synced_at,
            last_error: self.last_error.clone(),
            online: self.online,
        }
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
        let backoff = self.waiting.keys().next().map(|(at, _)| *at);
        match (backoff, self.blocked_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ids of the batches in flight.
    pub fn batches_in_flight(&self) -> impl Iterator<Item = u64> + '_ {
        self.batches.keys().copied()
    }

    // ----------------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------------

    /// One shared string per collection name: apps have a handful, and ops then carry no copy of it.
    fn intern_collection(&mut self, name: String) -> Arc<str> {
        if let Some(shared) = self.collections.get(name.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.collections.insert(shared.clone());
        shared
    }

    fn new_uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Adds a record to the end of its lane (no scheduling, no counters).
    fn insert(&mut self, record: OpRecord, durable: bool) {
        let lane_hash = self.lanes.hash(&record.collection, &record.key);
        let ops = &self.ops;
        self.lanes.push(lane_hash, record.id, |head| {
            ops[&head].record.entity() == record.entity()
        });
        let size = wire_size(&record);
        self.ops.insert(
            record.id,
            Entry {
                record,
                lane_hash,
                size,
                durable,
                auth_retried: false,
                slot: Slot::None,
            },
        );
    }

    /// Puts `id` into `ready` or `waiting` if it heads its lane, is sendable and is not already there.
    fn schedule_if_head(&mut self, id: OpId) {
        let Some(entry) = self.ops.get_mut(&id) else {
            return;
        };
        if entry.slot != Slot::None
            || !entry.durable
            || !matches!(entry.record.state, OpState::Pending | OpState::Backoff)
            || !self.lanes.is_head(entry.lane_hash, id)
        {
            return;
        }
        let seq = entry.record.seq;
        match entry.record.next_attempt_at.filter(|at| *at > self.now) {
            Some(at) => {
                entry.slot = Slot::Waiting;
                self.waiting.insert((at, seq), id);
            }
            None => {
                entry.slot = Slot::Ready;
                self.ready.insert(seq, id);
            }
        }
    }

    /// Takes an op out of `ready` / `waiting`.
    fn unslot(&mut self, id: OpId) {
        let Some(entry) = self.ops.get_mut(&id) else {
            return;
        };
        match entry.slot {
            Slot::None => {}
            Slot::Ready => {
                self.ready.remove(&entry.record.seq);
            }
            Slot::Waiting => {
                let at = entry.record.next_attempt_at.unwrap_or_default();
                self.waiting.remove(&(at, entry.record.seq));
            }
        }
        entry.slot = Slot::None;
    }

    /// Reads the memory a batch is about to use, op by op, in one tight loop of independent loads.
    ///
    /// Sending or settling a batch touches every op in it; with a big queue those ops were last used
    /// long ago and are out of cache. Touched one at a time, each miss waits for the one before; touched
    /// here first, the CPU fetches them in parallel. This keeps per-op cost nearly flat from 1k to 100k
    /// queued ops. It changes no state.
    fn warm_up<'a>(&self, ids: impl Iterator<Item = &'a OpId>) {
        let mut sum = 0usize;
        for id in ids {
            if let Some(e) = self.ops.get(id) {
                let r = &e.record;
                sum = sum
                    .wrapping_add(e.size as usize)
                    .wrapping_add(r.attempts as usize)
                    .wrapping_add(r.key.as_bytes().first().copied().unwrap_or(0) as usize)
                    .wrapping_add(Arc::strong_count(&r.payload))
                    // The payload's first map node: dropping the payload on ack walks it.
                    .wrapping_add(
                        r.payload
                            .as_object()
                            .and_then(|o| o.keys().next())
                            .map_or(0, String::len),
                    )
                    .wrapping_add(usize::from(r.last_error.is_some()))
                    .wrapping_add(usize::from(r.server_doc.is_some()))
                    .wrapping_add(usize::from(self.lanes.is_head(e.lane_hash, *id)));
            }
        }
        std::hint::black_box(sum);
    }

    /// Removes the head of a lane (ack or discard) and schedules the next op, if any.
    fn remove_head(&mut self, lane_hash: u64, id: OpId) {
        if let Some(next) = self.lanes.pop_head(lane_hash, id) {
            self.schedule_if_head(next);
        }
    }

    /// Moves the clock forward: expired backoffs become ready, an expired block lifts.
    fn advance(&mut self, now: u64, fx: &mut Vec<Effect>) {
        self.now = self.now.max(now);
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let ((_, seq), id) = entry.remove_entry();
            self.ready.insert(seq, id);
            if let Some(e) = self.ops.get_mut(&id) {
                e.slot = Slot::Ready;
            }
        }
        if self.blocked_until.is_some_and(|t| t <= self.now) {
            self.blocked_until = None;
            fx.push(Effect::Emit(Event::Unblocked));
        }
    }

    fn block(&mut self, until: u64, fx: &mut Vec<Effect>) {
        if until <= self.now || self.blocked_until.is_some_and(|b| b >= until) {
            return;
        }
        self.blocked_until = Some(until);
        fx.push(Effect::Emit(Event::Blocked { until }));
    }

    /// Forms and sends batches while there is room and something is ready.
    fn pump(&mut self, fx: &mut Vec<Effect>) {
        if self.paused || !self.online || self.blocked_until.is_some() {
            return;
        }
        while self.batches.len() < self.config.max_in_flight && !self.ready.is_empty() {
            self.warm_up(self.ready.values().take(self.config.max_ops));
            let mut ids = Vec::new();
            let mut bytes = 0usize;
            while ids.len() < self.config.max_ops {
                let Some((_, &id)) = self.ready.first_key_value() else {
                    break;
                };
                let size = self.ops[&id].size as usize;
                if !ids.is_empty() && bytes.saturating_add(size) > self.config.max_bytes {
                    break;
                }
                self.ready.pop_first();
                bytes = bytes.saturating_add(size);
                ids.push(id);
            }
            let mut ops = Vec::with_capacity(ids.len());
            for &id in &ids {
                let entry = self.ops.get_mut(&id).expect("ready op exists");
                entry.slot = Slot::None;
                set_state(&mut self.counts, &mut entry.record, OpState::Inflight);
                entry.record.attempts = entry.record.attempts.saturating_add(1);
                entry.record.next_attempt_at = None;
                entry.record.not_before = None;
                let r = &entry.record;
                ops.push(SendOp {
                    id,
                    idempotency_key: r.idempotency_key,
                    collection: r.collection.clone(),
                    key: r.key.clone(),
                    kind: r.kind.clone(),
                    payload: r.payload.clone(),
                    base_version: r.base_version.clone(),
                    attempt: r.attempts,
                });
                // Stored before the outcome is known: if the tab dies now, `restore` sees `inflight` and
                // knows the server may have applied the op (key must never rotate), and `attempts`
                // (so `max_attempts`) survives a tab that crashes on every send.
                fx.push(Effect::Persist(entry.record.clone()));
            }
            let batch_id = self.next_batch;
            self.next_batch += 1;
            self.batches.insert(batch_id, ids.clone());
            fx.push(Effect::Send(Batch {
                id: batch_id,
                refresh_auth: std::mem::take(&mut self.refresh_auth),
                ops,
            }));
            fx.push(Effect::Emit(Event::Sent { batch_id, ids }));
        }
    }

    /// Ends every call: send what is ready, then report drained / wake-up / status changes.
    fn finish(&mut self, fx: &mut Vec<Effect>) {
        self.pump(fx);
        let busy = self.counts.pending + self.counts.in_flight > 0;
        if self.busy && !busy {
            fx.push(Effect::Emit(Event::Drained));
        }
        self.busy = busy;
        let wake = self.next_wake();
        if let Some(at) = wake.filter(|_| wake != self.scheduled_wake) {
            fx.push(Effect::ScheduleWake(at));
        }
        self.scheduled_wake = wake;
        let status = self.status();
        if self.last_status.as_ref() != Some(&status) {
            fx.push(Effect::Emit(Event::StatusChanged {
                status: status.clone(),
            }));
            self.last_status = Some(status);
        }
    }

    /// Applies the outcome of one in-flight op.
    fn settle(
        &mut self,
        id: OpId,
        response: Option<&Response>,
        reason: Option<&str>,
        info: RateLimitInfo,
        fx: &mut Vec<Effect>,
    ) {
        let Some(entry) = self.ops.get(&id) else {
            return;
        };
        let class = classify(
            &self.config.rules,
            &self.config.key_in_flight_problem_types,
            &entry.record.kind,
            response,
        );
        if class != OutcomeClass::Auth {
            self.ops.get_mut(&id).expect("exists").auth_retried = false;
        }
        if class == OutcomeClass::Ack {
            self.ack(id, response, fx);
            return;
        }
        let error = op_error(class, response, reason);
        self.last_error = Some(error.clone());
        let now = self.now;
        let retry_after = info.retry_after_ms.map(|ms| now.saturating_add(ms));
        match class {
            OutcomeClass::Ack => unreachable!("handled above"),
            OutcomeClass::Transient => {
                self.ops.get_mut(&id).expect("exists").record.maybe_applied = true;
                self.back_off(id, error, retry_after, fx);
            }
            OutcomeClass::RateLimited => {
                let entry = self.ops.get(&id).expect("exists");
                let delay = info
                    .retry_after_ms
                    .or(info.exhausted_for_ms())
                    .or(info.reset_ms)
                    .unwrap_or_else(|| {
                        self.config
                            .retry
                            .jittered_delay_ms(entry.record.attempts, &mut self.rng)
                    });
                let until = now.saturating_add(delay);
                self.block(until, fx);
                // Waiting out a rate limit is not the op's failure: it does not use up attempts.
                let entry = self.ops.get_mut(&id).expect("exists");
                entry.record.attempts = entry.record.attempts.saturating_sub(1);
                self.reschedule(id, until, Some(until), error, fx);
            }
            OutcomeClass::Auth => {
                self.refresh_auth = true;
                let entry = self.ops.get_mut(&id).expect("exists");
                if entry.auth_retried {
                    self.back_off(id, error, retry_after, fx);
                } else {
                    entry.auth_retried = true;
                    self.reschedule(id, now, None, error, fx);
                }
            }
            OutcomeClass::Conflict => self.conflict(id, response, error, fx),
            OutcomeClass::Permanent => self.halt(id, OpState::Failed, error, None, None, fx),
        }
    }

    fn ack(&mut self, id: OpId, response: Option<&Response>, fx: &mut Vec<Effect>) {
        let entry = self.ops.remove(&id).expect("settled op exists");
        *self.counts.slot(entry.record.state) -= 1;
        debug_assert!(
            self.lanes.is_head(entry.lane_hash, id),
            "only lane heads are sent"
        );
        self.remove_head(entry.lane_hash, id);
        self.last_synced_at = Some(self.now);
        self.last_error = None;
        let record = entry.record;
        let version = response.and_then(|r| r.header("etag")).map(str::to_string);
        let confirmed = self.confirmed_after_ack(&record, version.clone(), response);
        self.follow_acked_version(&record, &version, fx);
        fx.push(Effect::Delete(id));
        fx.push(Effect::PersistDoc(confirmed_doc(
            &record.collection,
            &record.key,
            &confirmed,
        )));
        fx.push(Effect::Emit(Event::Acked {
            id,
            collection: record.collection.clone(),
            key: record.key.clone(),
            version,
            doc: confirmed.doc.clone(),
        }));
        self.view
            .set_confirmed(&record.collection, &record.key, confirmed);
        self.refold_entity(&record.collection, &record.key, fx);
    }

    /// The server's state of an entity after it acknowledged `record`: the document it returned, or, when
    /// it returned none, the op applied to what we knew; a delete leaves a tombstone.
    fn confirmed_after_ack(
        &mut self,
        record: &OpRecord,
        version: Option<String>,
        response: Option<&Response>,
    ) -> Confirmed {
        let returned = response
            .and_then(|r| r.body.as_ref())
            .filter(|b| !b.is_null());
        let doc = match (&record.kind, returned) {
            (OpKind::Delete, _) => None,
            (_, Some(body)) => Some(Arc::new(body.clone())),
            (_, None) => {
                let before = self
                    .view
                    .confirmed(&record.collection, &record.key)
                    .and_then(|c| c.doc.clone());
                view::apply(before, record, &mut self.mutator)
            }
        };
        Confirmed { version, doc }
    }

    /// The ops queued behind an acknowledged one were made on top of it. Those whose base version the
    /// engine filled in move to the version the ack produced; otherwise the server would see our own
    /// previous write as a conflicting change.
    fn follow_acked_version(
        &mut self,
        acked: &OpRecord,
        version: &Option<String>,
        fx: &mut Vec<Effect>,
    ) {
        let ops = &self.ops;
        let Some(lane) = self
            .lanes
            .get(self.lanes.hash(&acked.collection, &acked.key), |head| {
                ops[&head].record.entity() == acked.entity()
            })
        else {
            return;
        };
        let followers: Vec<OpId> = lane
            .iter()
            .filter(|id| {
                let r = &ops[id].record;
                r.auto_base && r.base_version == acked.base_version
            })
            .collect();
        for id in followers {
            let entry = self.ops.get_mut(&id).expect("lane op exists");
            entry.record.base_version = version.clone();
            entry.record.auto_base = version.is_some();
            fx.push(Effect::Persist(entry.record.clone()));
        }
    }

    /// The server holds a newer version than the op was made against. Its current document (the
    /// problem's `current`, docs/PROTOCOL.md) becomes the confirmed state, then the collection's strategy
    /// decides what happens to the op.
    fn conflict(
        &mut self,
        id: OpId,
        response: Option<&Response>,
        error: OpError,
        fx: &mut Vec<Effect>,
    ) {
        let record = &self.ops[&id].record;
        let (collection, key) = (record.collection.clone(), record.key.clone());
        let current = response.and_then(server_current);
        let (server_doc, server_version) = match &current {
            Some(c) => (c.doc.as_deref().cloned(), c.version.clone()),
            // No `current`: keep whatever the server said, for the app to show.
            None => (response.and_then(|r| r.body.clone()), None),
        };
        if let Some(current) = current {
            fx.push(Effect::PersistDoc(confirmed_doc(
                &collection,
                &key,
                &current,
            )));
            self.view.set_confirmed(&collection, &key, current);
        }
        let strategy = self.config.collection(&collection).conflict;
        let rebase_to = server_version
            .clone()
            .filter(|v| Some(v) != self.ops[&id].record.base_version.as_ref());
        match (strategy, rebase_to) {
            (ConflictStrategy::ServerWins, _) => {
                let entry = self.ops.remove(&id).expect("settled op exists");
                *self.counts.slot(entry.record.state) -= 1;
                self.remove_head(entry.lane_hash, id);
                fx.push(Effect::Delete(id));
                fx.push(Effect::Emit(Event::Conflict {
                    id,
                    error,
                    server_doc,
                    server_version,
                    resolution: ConflictResolution::Dropped,
                }));
            }
            (ConflictStrategy::ClientWins, Some(version)) => {
                // A 412 is definitive (the op was not applied), so the resend is a new request: new key.
                let key = self.new_uuid();
                let now = self.now;
                let entry = self.ops.get_mut(&id).expect("settled op exists");
                set_state(&mut self.counts, &mut entry.record, OpState::Pending);
                entry.record.base_version = Some(version);
                entry.record.auto_base = false;
                entry.record.idempotency_key = key;
                entry.record.maybe_applied = false;
                entry.record.last_error = Some(error.clone());
                entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
                fx.push(Effect::Persist(entry.record.clone()));
                fx.push(Effect::Emit(Event::Conflict {
                    id,
                    error,
                    server_doc,
                    server_version,
                    resolution: ConflictResolution::Rebased,
                }));
                self.schedule_if_head(id);
            }
            // Manual, or client-wins without a newer version to rebase on (which would loop).
            _ => {
                self.ops.get_mut(&id).expect("exists").record.server_version = server_version;
                self.halt(id, OpState::Conflict, error, server_doc, None, fx);
            }
        }
        self.refold_entity(&collection, &key, fx);
    }

    /// A transient failure: schedule the next attempt by the retry policy, or give up.
    fn back_off(
        &mut self,
        id: OpId,
        error: OpError,
        server_floor: Option<u64>,
        fx: &mut Vec<Effect>,
    ) {
        let record = &self.ops[&id].record;
        let decision = self.config.retry.decide(
            record.attempts,
            record.age_origin(),
            self.now,
            server_floor,
            &mut self.rng,
        );
        match decision {
            RetryDecision::At(at) => self.reschedule(id, at, server_floor, error, fx),
            RetryDecision::GiveUp => {
                let error = OpError {
                    message: format!(
                        "gave up after {} attempts: {}",
                        record.attempts, error.message
                    ),
                    ..error
                };
                // Keep the server's floor: even a manual retry must not come sooner than it asked.
                self.halt(id, OpState::Failed, error, None, server_floor, fx);
            }
        }
    }

    /// Puts an op back in its lane (as head) to be sent at `at`.
    fn reschedule(
        &mut self,
        id: OpId,
        at: u64,
        not_before: Option<u64>,
        error: OpError,
        fx: &mut Vec<Effect>,
    ) {
        let now = self.now;
        let entry = self.ops.get_mut(&id).expect("exists");
        let to = if at > now {
            OpState::Backoff
        } else {
            OpState::Pending
        };
        set_state(&mut self.counts, &mut entry.record, to);
        entry.record.next_attempt_at = (at > now).then_some(at);
        entry.record.not_before = not_before.filter(|t| *t > now);
        entry.record.last_error = Some(error.clone());
        fx.push(Effect::Persist(entry.record.clone()));
        fx.push(Effect::Emit(Event::RetryScheduled {
            id,
            attempts: entry.record.attempts,
            at: at.max(now),
            error,
        }));
        self.schedule_if_head(id);
    }

    /// Dead-letters or holds an op; its lane stops behind it.
    fn halt(
        &mut self,
        id: OpId,
        to: OpState,
        error: OpError,
        server_doc: Option<Value>,
        not_before: Option<u64>,
        fx: &mut Vec<Effect>,
    ) {
        let now = self.now;
        let entry = self.ops.get_mut(&id).expect("exists");
        set_state(&mut self.counts, &mut entry.record, to);
        entry.record.last_error = Some(error.clone());
        entry.record.next_attempt_at = None;
        entry.record.not_before = not_before.filter(|t| *t > now);
        entry.record.server_doc = server_doc.clone();
        fx.push(Effect::Persist(entry.record.clone()));
        let (collection, key) = (entry.record.collection.clone(), entry.record.key.clone());
        fx.push(Effect::Emit(if to == OpState::Conflict {
            Event::Conflict {
                id,
                error,
                server_doc,
                server_version: entry.record.server_version.clone(),
                resolution: ConflictResolution::Held,
            }
        } else {
            Event::Failed {
                id,
                collection: collection.clone(),
                key: key.clone(),
                error,
            }
        }));
        if to == OpState::Failed {
            // Rolled back: the view no longer shows it.
            self.refold_entity(&collection, &key, fx);
        }
    }

    fn retry_one(&mut self, id: OpId, fx: &mut Vec<Effect>) {
        let now = self.now;
        let Some(entry) = self.ops.get(&id) else {
            return;
        };
        match entry.record.state {
            OpState::Pending | OpState::Inflight => {}
            OpState::Backoff => {
                self.unslot(id);
                let entry = self.ops.get_mut(&id).expect("exists");
                entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
                self.schedule_if_head(id);
            }
            OpState::Failed | OpState::Conflict => {
                let fresh_key = !entry.record.maybe_applied;
                let new_key = fresh_key.then(|| self.new_uuid());
                let entry = self.ops.get_mut(&id).expect("exists");
                if let Some(key) = new_key {
                    // The server definitively refused every attempt under the old key, and may have
                    // stored that refusal against it: a new key lets the retry be judged afresh.
                    entry.record.idempotency_key = key;
                }
                set_state(&mut self.counts, &mut entry.record, OpState::Pending);
                entry.record.attempts = 0;
                entry.record.retried_at = Some(now);
                entry.record.server_doc = None;
                entry.record.server_version = None;
                entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
                entry.auth_retried = false;
                fx.push(Effect::Persist(entry.record.clone()));
                let (collection, key) = (entry.record.collection.clone(), entry.record.key.clone());
                self.schedule_if_head(id);
                // A failed op rejoins the view; a resolved one may carry a new payload.
                self.refold_entity(&collection, &key, fx);
            }
        }
    }

    /// Takes a batch out of flight and moves the clock: how every answer to a send begins.
    fn take_batch(
        &mut self,
        batch_id: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) -> Result<Vec<OpId>, CoreError> {
        let ids = self
            .batches
            .remove(&batch_id)
            .ok_or(CoreError::UnknownBatch(batch_id))?;
        self.advance(now, fx);
        Ok(ids)
    }

    /// Recomputes an entity's view from its confirmed state and its lane, and tells the app if it
    /// changed.
    fn refold_entity(&mut self, collection: &Arc<str>, key: &Arc<str>, fx: &mut Vec<Effect>) {
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

/// The `current` member of a conflict problem (docs/PROTOCOL.md): the server's version and document.
fn server_current(response: &Response) -> Option<Confirmed> {
    let current = response.body.as_ref()?.get("current")?;
    if !["doc", "deleted", "etag", "version"]
        .iter()
        .any(|field| current.get(field).is_some())
    {
        return None;
    }
    let version = match (current.get("etag"), current.get("version")) {
        (Some(Value::String(etag)), _) => Some(etag.clone()),
        (_, Some(Value::Number(n))) => Some(format!("\"{n}\"")),
        (_, Some(Value::String(v))) => Some(v.clone()),
        _ => None,
    };
    let deleted = current
        .get("deleted")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let doc = match current.get("doc") {
        Some(doc) if !deleted && !doc.is_null() => Some(Arc::new(doc.clone())),
        _ => None,
    };
    Some(Confirmed { version, doc })
}

fn confirmed_doc(collection: &str, key: &str, confirmed: &Confirmed) -> ConfirmedDoc {
    ConfirmedDoc {
        collection: collection.to_owned(),
        key: key.to_owned(),
        version: confirmed.version.clone(),
        doc: confirmed
            .doc
            .clone()
            .unwrap_or_else(|| Arc::new(Value::Null)),
        deleted: confirmed.doc.is_none(),
    }
}

fn wire_size(record: &OpRecord) -> u32 {
    u32::try_from(record.wire_size()).unwrap_or(u32::MAX)
}

/// Builds the app-facing error for a non-ack outcome.
fn op_error(class: OutcomeClass, response: Option<&Response>, reason: Option<&str>) -> OpError {
    match response {
        None => OpError {
            class,
            status: None,
            code: Some("network_error".to_string()),
            message: reason
                .unwrap_or("network error or lost response")
                .to_string(),
        },
        Some(r) => OpError {
            class,
            status: Some(r.status),
            code: r.problem_type().map(str::to_string),
            message: r
                .problem_message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {}", r.status)),
        },
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod view_tests;
