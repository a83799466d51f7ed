//! Restart: rebuilding the engine from what storage gave back.
//!
//! The stored records are the truth, read conservatively: an op stored `inflight` may have been
//! applied (its request left; the barrier rule guarantees the mark was durable first), and stored
//! times are judged against a clock that may have been set back since they were written.

use super::*;

/// How far a stored "it happened at" time may lie ahead of the clock before it counts as proof the
/// clock was set back (small steps, such as an NTP correction, are not).
const CLOCK_TOLERANCE_MS: u64 = 60_000;

/// What storage gave back for a restart.
#[derive(Debug, Default)]
pub struct Stored {
    /// The op records.
    pub records: Vec<OpRecord>,
    /// The confirmed documents.
    pub docs: Vec<ConfirmedDoc>,
    /// The server's last stated idempotency retention ([`Effect::PersistRetention`]).
    pub stated_retention_ms: Option<u64>,
    /// The engine's clock when it last marked it ([`Effect::PersistClock`]).
    pub clock_mark: Option<u64>,
    /// The in-flight marks of batches whose answer was never applied ([`Effect::PersistMark`]).
    pub marks: Vec<BatchMark>,
}

/// What storage gave back for a restart besides the op records and the confirmed documents: what a
/// restore needs before the first record ([`Engine::restoring`]).
#[derive(Clone, Debug, Default)]
pub struct StoredMeta {
    /// The server's last stated idempotency retention ([`Effect::PersistRetention`]).
    pub stated_retention_ms: Option<u64>,
    /// The engine's clock when it last marked it ([`Effect::PersistClock`]).
    pub clock_mark: Option<u64>,
    /// The in-flight marks of batches whose answer was never applied ([`Effect::PersistMark`]).
    pub marks: Vec<BatchMark>,
}

/// An engine being rebuilt from storage ([`Engine::restoring`]), which takes the op records one at a
/// time, in any order, as they are read: each is checked, read the way it must be understood now,
/// counted and put in the op table at once ([`Restoring::admit`]). What depends on the order of the
/// ops (their lanes, the view, the schedule) waits for [`Restoring::finish`], about two thirds of the
/// work. So a restore that reads its records in parts does the rest while the next part is read, and
/// never holds the records in a list of their own next to the table.
#[derive(Debug)]
pub struct Restoring {
    engine: Engine,
    marks: Vec<BatchMark>,
    /// Each admitted op's place in lane order, the same rule `adopt` keeps live: an op that holds its
    /// lane's head first, then `(seq, id)` (two tabs may have stored the same seq). The last part is the
    /// op's id ([`OpId::sort_key`]).
    order: Vec<(u64, u64, u128)>,
}

impl Restoring {
    /// Makes room for `additional` more records at once (the count of a store about to be read).
    pub fn reserve(&mut self, additional: usize) {
        self.engine.ops.reserve(additional);
        self.order.reserve_exact(additional);
    }

    /// Takes one stored record in. Fails for a record of a newer format, or a second record of one op.
    pub fn admit(&mut self, mut record: OpRecord) -> Result<(), CoreError> {
        let engine = &mut self.engine;
        if record.format_version > FORMAT_VERSION {
            return Err(CoreError::UnsupportedFormat {
                found: record.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if engine.ops.contains_key(&record.id) {
            return Err(CoreError::DuplicateOp(record.id));
        }
        // A batch's mark says what its ops' records would say had each been rewritten at send: read
        // them through it; below, with marks found, every record read in flight is stored as read,
        // and the marks are dropped after them. Marks are left only by a tab that died with a push
        // in flight, and name a few hundred ops at most: a plain scan, and none at all without them.
        let marked = !self.marks.is_empty();
        if marked {
            let _ = self
                .marks
                .iter()
                .flat_map(|m| &m.ops)
                .any(|m| m.fold(&mut record));
        }
        // Placed as stored (through the marks): an op read in flight holds its lane's head.
        self.order.push((
            u64::from(!record.holds_lane_head()),
            record.seq,
            record.id.sort_key(),
        ));
        record.collection = engine.intern_shared(&record.collection);
        // The times `read_stored` may change.
        let times = |r: &OpRecord| {
            (
                r.horizon,
                r.created_at,
                r.retried_at,
                r.next_attempt_at,
                r.not_before,
            )
        };
        let before = times(&record);
        let in_flight = record.state == OpState::Inflight;
        engine.read_stored(&mut record);
        if times(&record) != before || (in_flight && marked) {
            // What was read differently (a clock set back, a horizon an old record lacked) must
            // stay so in the next session too, which may no longer see why: stored by the first
            // call, before anything it sends.
            engine.deferred.push(Effect::Persist(record.clone()));
        }
        if record.last_error.as_ref().map(|e| e.class) == Some(OutcomeClass::RateLimited) {
            // The block itself is not stored, but the rate-limited ops carry its end: a reload
            // must not turn a 429 into a burst. One that has ended already is no block: the status
            // must not read "blocked until" a time gone by.
            let until = record.not_before.filter(|t| *t > engine.now);
            engine.blocked_until = engine.blocked_until.max(until);
        }
        engine.next_seq = engine.next_seq.max(record.seq + 1);
        *engine.counts.slot(record.state) += 1;
        let lane_hash = engine.lanes.hash(&record.collection, &record.key);
        engine.add_entry(record, lane_hash, true);
        Ok(())
    }

    /// The status while the restore reads, with `total` records stored (or estimated): state
    /// `Restoring`, the counts of the records admitted so far, and `progress` as admitted of `total`
    /// (never less than admitted). What needs every record (lanes, schedule, the latest error) waits
    /// for [`Restoring::finish`], so it is not shown yet.
    /// Cheap: the counts are kept as records are admitted, so an app can show how a long restore goes
    /// before it ends.
    pub fn status(&self, total: usize) -> Status {
        let engine = &self.engine;
        let admitted = self.order.len();
        Status {
            state: SyncState::Restoring,
            next_attempt_at: None,
            last_error: None,
            progress: Some(Progress {
                current: admitted,
                total: total.max(admitted),
            }),
            ..engine.status()
        }
    }

    /// The engine restored with the confirmed documents `docs`: the ops put in their lanes and in the
    /// view, in lane order, and the lane heads scheduled.
    pub fn finish(self, docs: Vec<ConfirmedDoc>) -> Engine {
        let Restoring {
            mut engine,
            marks,
            mut order,
        } = self;
        // The view is built as it is kept live: each confirmed document shown, then each op applied
        // on top in lane order, as an enqueue applies it; nothing is reported for it, since it is the
        // state the app starts from.
        let mut chains = Vec::new();
        for doc in docs {
            let (collection, key) = (
                engine.intern_collection(doc.collection),
                Arc::<str>::from(doc.key),
            );
            let confirmed = Confirmed {
                version: doc.version,
                doc: (!doc.deleted).then_some(doc.doc),
            };
            engine.view.restore_confirmed(&collection, &key, confirmed);
            if !doc.acks.is_empty() {
                chains.push((collection, key, doc.acks));
            }
        }
        crate::order::sort_by_key(&mut order, |place| *place);
        for (_, _, id) in order {
            let id = OpId(Uuid::from_u128(id));
            let entry = &engine.ops[&id];
            let (lane_hash, has_error) = (entry.lane_hash, entry.record.last_error.is_some());
            let entity = (entry.record.collection.clone(), entry.record.key.clone());
            if view::in_view(&entry.record) {
                engine.view.push_op(&entry.record, &mut engine.mutator);
            }
            if engine.push_lane(lane_hash, id, (&entity.0, &entity.1)) {
                // A lane's first op is its head for the rest of the restore: scheduled now, in lane
                // order, which is the order `ready` keeps (cheap inserts at its end).
                engine.schedule_if_head(id);
            }
            if has_error {
                // The records keep no error times: in seq order, the newest op's error is the last.
                engine.note_error(id);
            }
        }
        // After the lanes: an op of another tab's, stored on the state before our acks, follows them.
        engine.restore_ack_chains(chains);
        for first in marks.iter().filter_map(|m| m.ops.first()) {
            engine.deferred.push(Effect::DeleteMark(first.0));
        }
        engine.busy = engine.to_settle() > 0;
        engine
    }
}

impl Engine {
    /// Rebuilds the engine from the records storage gave back, at engine time `now`. Ops a crash left
    /// `inflight` become ready again with the same idempotency key. Call [`Engine::drain`] next to
    /// start sending.
    pub fn restore(
        config: Config,
        randomness: impl Into<Randomness>,
        records: Vec<OpRecord>,
        now: u64,
    ) -> Result<Engine, CoreError> {
        Self::restore_with_docs(config, randomness, records, Vec::new(), now)
    }

    /// [`Engine::restore`] with the confirmed documents storage gave back too, so the optimistic view
    /// (confirmed + pending) is whole again after a reload.
    pub fn restore_with_docs(
        config: Config,
        randomness: impl Into<Randomness>,
        records: Vec<OpRecord>,
        docs: Vec<ConfirmedDoc>,
        now: u64,
    ) -> Result<Engine, CoreError> {
        let stored = Stored {
            records,
            docs,
            ..Stored::default()
        };
        Self::restore_from(config, randomness, stored, now)
    }

    /// Rebuilds the engine from everything storage gave back, at engine time `now`: the records
    /// admitted one by one into [`Engine::restoring`], then the restore finished.
    pub fn restore_from(
        config: Config,
        randomness: impl Into<Randomness>,
        stored: Stored,
        now: u64,
    ) -> Result<Engine, CoreError> {
        let Stored {
            records,
            docs,
            stated_retention_ms,
            clock_mark,
            marks,
        } = stored;
        let meta = StoredMeta {
            stated_retention_ms,
            clock_mark,
            marks,
        };
        let mut restoring = Engine::restoring(config, randomness, meta, now)?;
        restoring.reserve(records.len());
        for record in records {
            restoring.admit(record)?;
        }
        Ok(restoring.finish(docs))
    }

    /// Starts rebuilding the engine at engine time `now`, from what storage holds besides the op
    /// records and the confirmed documents; the records are admitted next, as they are read.
    pub fn restoring(
        config: Config,
        randomness: impl Into<Randomness>,
        meta: StoredMeta,
        now: u64,
    ) -> Result<Restoring, CoreError> {
        let mut engine = Engine::new(config, randomness)?;
        engine.now = now;
        engine.stated_retention_ms = meta.stated_retention_ms;
        // The clock stands before where a previous session last marked it: it was set back.
        engine.clock_set_back = meta
            .clock_mark
            .is_some_and(|m| m > now.saturating_add(CLOCK_TOLERANCE_MS));
        Ok(Restoring {
            engine,
            marks: meta.marks,
            order: Vec::new(),
        })
    }

    /// Reads one stored record the way it must be understood now.
    pub(super) fn read_stored(&self, record: &mut OpRecord) {
        let now = self.now;
        // Written back in the current format from now on (every older one reads as it).
        record.format_version = FORMAT_VERSION;
        if record.state == OpState::Inflight {
            // The request left (its mark was committed first) and the answer was lost with the tab:
            // the server may have applied it.
            record.state = OpState::Pending;
            record.maybe_applied = true;
        }
        let safe = self.safe_retention_ms();
        if record.maybe_applied && record.horizon.is_none() {
            // A record from before horizons were stored: its key cannot have been sent before it was
            // minted, so that is the conservative start of the server's memory of it.
            record.horizon = Some(record.age_origin().saturating_add(safe));
        }
        let seen_ahead = [Some(record.created_at), record.retried_at]
            .into_iter()
            .flatten()
            .any(|t| t > now.saturating_add(CLOCK_TOLERANCE_MS))
            || record
                .horizon
                .is_some_and(|h| h > now.saturating_add(safe).saturating_add(CLOCK_TOLERANCE_MS))
            || self.clock_set_back;
        if seen_ahead {
            // The clock was set back since this was written: how long ago the key was sent is
            // unknown, so the server may already have forgotten it. The horizon goes to the start of
            // time, not to `now`: a clock set back once more, by less than the detection tolerance,
            // would otherwise put `now` before it again and the key would look remembered.
            if record.horizon.is_some() {
                record.horizon = Some(0);
            }
            record.created_at = record.created_at.min(now);
            record.retried_at = record.retried_at.map(|t| t.min(now));
        }
        // Deadlines never lie further ahead than the policy allows, whatever the clock did: a clock
        // set back must not freeze sending for the size of the jump.
        let policy = &self.config.retry;
        let backoff_cap = now.saturating_add(policy.cap_ms.max(policy.floor_ms));
        let server_cap = now.saturating_add(policy.max_server_wait_ms);
        record.not_before = record.not_before.map(|t| t.min(server_cap));
        let cap = backoff_cap.max(record.not_before.unwrap_or(0));
        record.next_attempt_at = record.next_attempt_at.map(|t| t.min(cap));
    }
}
