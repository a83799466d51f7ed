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

use super::*;

impl Engine {
    /// A follower's engine (`true`) sends nothing, writes no clock marks and keeps the writes `restore`
    /// decided for the leader; it still takes its own tab's enqueues. `false` makes it a leader again.
    pub fn set_passive(&mut self, passive: bool) {
        if passive != self.passive {
            self.forget_marks_ahead();
        }
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
        self.adopt_with(records, true, now)
    }

    /// [`Engine::adopt`], but the ops wait for [`Engine::confirm_stored`] before they may be sent, as
    /// this tab's own enqueues do: a runtime that holds its own ops until the app drains
    /// (`autoDrain: false`), or gathers a burst into full batches, treats adopted ones alike.
    pub fn adopt_unconfirmed(
        &mut self,
        records: Vec<OpRecord>,
        now: u64,
    ) -> Result<Vec<Effect>, CoreError> {
        self.adopt_with(records, false, now)
    }

    /// Takes over from `from` (the engine this one replaces, rebuilt from a store read) the ops of
    /// `ids` that the read missed: this tab's enqueues whose commit had not landed when the read began,
    /// or that were made while it ran. Each keeps its place, its durability and its pending commit.
    /// It returns no effects: the engine's next call stores what moved (an op made before one of our
    /// acks follows it) and sends what became sendable.
    pub fn carry_over(&mut self, from: &Engine, ids: &[OpId]) {
        let mut ignored = Vec::new();
        for id in ids {
            let Some(entry) = from.ops.get(id) else {
                continue;
            };
            if self.ops.contains_key(id) {
                continue;
            }
            let mut record = entry.record.clone();
            record.collection = self.intern_shared(&record.collection);
            // Made before an ack of ours this engine read from the store: it follows that ack, and
            // its new precondition is stored (by the next call, before anything it sends).
            if self.follow_earlier_ack(&mut record) {
                self.deferred.push(Effect::Persist(record.clone()));
            }
            self.next_seq = self.next_seq.max(record.seq + 1);
            *self.counts.slot(record.state) += 1;
            let (collection, key) = (record.collection.clone(), record.key.clone());
            self.insert_in_order(record, entry.durable);
            // Nothing is told: the rebuilt view is compared with the old one as a whole.
            self.refold_entity(&collection, &key, &mut ignored);
        }
    }

    fn adopt_with(
        &mut self,
        records: Vec<OpRecord>,
        durable: bool,
        now: u64,
    ) -> Result<Vec<Effect>, CoreError> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        let mut records = records;
        crate::order::sort_by_key(&mut records, |r| (0, r.seq, r.id.sort_key()));
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
            record.collection = self.intern_shared(&record.collection);
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
            self.insert_in_order(record, durable);
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

    /// Puts a record into its lane at its `(seq, id)` place, behind a head that holds
    /// its place, and schedules whichever op heads the lane afterwards.
    fn insert_in_order(&mut self, record: OpRecord, durable: bool) {
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
        self.add_entry(record, lane_hash, durable);
        self.schedule_if_head(id);
    }
}
