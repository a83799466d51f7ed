//! Many tabs, one queue: the leader adopts the ops other tabs stored, and followers mirror the store.
//!
//! Every tab of an outbox enqueues into the same store, but only one (the leader) sends. A follower's
//! engine is *passive*: it adds its own ops (stored by its own commits) and shows the view, and it
//! neither sends nor writes anything about ops it did not make. The leader learns of a follower's ops
//! once they are committed and adopts them into its lanes.
//!
//! Order: an entity's ops are kept in `(seq, id)` order, except that an op which holds its lane's head
//! ([`OpRecord::holds_lane_head`]: sent, halted or backing off) stays first. `restore` sorts by the same
//! rule, so the leader's live lanes, a follower's mirror and the next leader after a crash all agree.
//! Seqs are a Lamport clock: every engine hands out seqs above all it has seen, so an op made after
//! another tab's op was adopted sorts after it.

use std::collections::VecDeque;

use super::*;

/// How many entities' last acks an engine remembers for adoption: far more than can be acked in the
/// moments a follower's op takes to reach the leader.
const RECENT_ACKS: usize = 4096;

/// The last ack of an entity: the state it was made on, and the state it produced.
#[derive(Debug)]
struct LastAck {
    collection: Arc<str>,
    key: Arc<str>,
    order: (u64, OpId),
    base_version: Option<String>,
    create_only: bool,
    result: Confirmed,
}

/// The last acks of recently acked entities, oldest first out.
#[derive(Debug, Default)]
pub(super) struct RecentAcks {
    by_lane: FastMap<u64, LastAck>,
    order: VecDeque<u64>,
}

impl Engine {
    /// A follower's engine (`true`) sends nothing, writes no clock marks and keeps the writes `restore`
    /// decided for the leader; it still takes its own tab's enqueues. `false` makes it a leader again.
    pub fn set_passive(&mut self, passive: bool) {
        self.passive = passive;
    }

    /// Whether the app paused sending ([`Engine::pause`]).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether the engine is a follower's ([`Engine::set_passive`]).
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// Adopts ops another tab stored: each one not known yet joins its lane in order, is shown in the
    /// view and (on a leader) is sent in its turn. Records are read as `restore` reads them. Ops already
    /// known are ignored, so adopting the same record twice is harmless.
    pub fn adopt(&mut self, records: Vec<OpRecord>, now: u64) -> Result<Vec<Effect>, CoreError> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        let mut records = records;
        records.sort_by_key(|r| (r.seq, r.id));
        for mut record in records {
            if record.format_version > FORMAT_VERSION {
                return Err(CoreError::UnsupportedFormat {
                    found: record.format_version,
                    supported: FORMAT_VERSION,
                });
            }
            if self.ops.contains_key(&record.id) {
                continue;
            }
            record.collection = self.intern_collection(record.collection.to_string());
            let before = record.clone();
            self.read_stored(&mut record);
            self.follow_earlier_ack(&mut record);
            if record != before && !self.passive {
                fx.push(Effect::Persist(record.clone()));
            }
            self.next_seq = self.next_seq.max(record.seq + 1);
            *self.counts.slot(record.state) += 1;
            let (id, collection, key) = (record.id, record.collection.clone(), record.key.clone());
            let has_error = record.last_error.is_some();
            self.insert_in_order(record);
            if has_error {
                self.note_error(id);
            }
            fx.push(Effect::Emit(Event::Enqueued {
                id,
                collection: collection.clone(),
                key: key.clone(),
            }));
            self.refold_entity(&collection, &key, &mut fx);
        }
        self.finish(&mut fx);
        Ok(fx)
    }

    /// Remembers what an ack produced, for the adoption of ops made on the same state in other tabs.
    pub(super) fn remember_ack(&mut self, acked: &OpRecord, result: &Confirmed) {
        let hash = self.lanes.hash(&acked.collection, &acked.key);
        let last = LastAck {
            collection: acked.collection.clone(),
            key: acked.key.clone(),
            order: (acked.seq, acked.id),
            base_version: acked.base_version.clone(),
            create_only: acked.create_only,
            result: result.clone(),
        };
        let acks = &mut self.recent_acks;
        if acks.by_lane.insert(hash, last).is_none() {
            acks.order.push_back(hash);
            if acks.order.len() > RECENT_ACKS {
                if let Some(old) = acks.order.pop_front() {
                    acks.by_lane.remove(&old);
                }
            }
        }
    }

    /// Another tab made `record` on the state an op of ours started from, and that op, which comes
    /// before it in lane order, was acked before the record got here. In one tab the record would have
    /// been queued behind it and moved to the state the ack produced (`follow_acked_version`); so it
    /// moves now, or our own write would come back as a conflict with ourselves. Only while that ack is
    /// still the entity's confirmed state: anything newer is someone else's change.
    fn follow_earlier_ack(&self, record: &mut OpRecord) {
        if !record.auto_base || record.attempts > 0 {
            return;
        }
        let hash = self.lanes.hash(&record.collection, &record.key);
        let Some(last) = self.recent_acks.by_lane.get(&hash) else {
            return;
        };
        let same_state =
            last.base_version == record.base_version && last.create_only == record.create_only;
        let confirmed = self.view.confirmed(&record.collection, &record.key);
        if (&*last.collection, &*last.key) != (&*record.collection, &*record.key)
            || last.order >= (record.seq, record.id)
            || !same_state
            || confirmed.map(|c| &c.version) != Some(&last.result.version)
        {
            return;
        }
        let (base, create_only) = settling::precondition_on(&record.kind, Some(&last.result));
        record.base_version = base;
        record.create_only = create_only;
    }

    /// Puts a stored (durable) record into its lane at its `(seq, id)` place, behind a head that holds
    /// its place, and schedules whichever op heads the lane afterwards.
    fn insert_in_order(&mut self, record: OpRecord) {
        let lane_hash = self.lanes.hash(&record.collection, &record.key);
        let order = (record.seq, record.id);
        let ops = &self.ops;
        let lane = self.lanes.get(lane_hash, |head| {
            ops[&head].record.entity() == record.entity()
        });
        let mut at = 0;
        let mut head: Option<(OpId, bool)> = None;
        for (i, id) in lane.into_iter().flat_map(|l| l.iter()).enumerate() {
            let r = &ops[&id].record;
            if i == 0 {
                head = Some((id, r.state.is_halted()));
                if r.holds_lane_head() {
                    at = 1;
                    continue;
                }
            }
            if (r.seq, r.id) > order {
                break;
            }
            at = i + 1;
        }
        let id = record.id;
        let entity = (record.collection.clone(), record.key.clone());
        let became_head = self.lanes.insert_at(lane_hash, id, at, |h| {
            let r = &ops[&h].record;
            (&r.collection, &r.key) == (&entity.0, &entity.1)
        });
        match head {
            // The old head steps back: it was neither sent nor halted, so it was merely scheduled.
            Some((old, _)) if became_head => self.unslot(old),
            Some((_, true)) => self.held += 1,
            _ => {}
        }
        self.add_entry(record, lane_hash, true);
        self.schedule_if_head(id);
    }
}
