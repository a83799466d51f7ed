//! Commands from the app (enqueue, retry, resolve, discard, pause, online …) and documents it hands in.

use super::*;

impl Engine {
    /// Adds an op to the end of its entity's lane. Returns its id and the effects, starting with the
    /// `Persist` the runtime must commit; the op is not sent until [`Engine::confirm_stored`].
    pub fn enqueue(&mut self, op: NewOp, now: u64) -> Result<(OpId, Vec<Effect>), CoreError> {
        if op.collection.is_empty() || op.key.is_empty() {
            return Err(CoreError::InvalidEntity);
        }
        let depth = op.payload.depth();
        if depth > crate::op::MAX_PAYLOAD_DEPTH {
            return Err(CoreError::TooDeep(depth));
        }
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        let id = OpId(self.new_uuid());
        let collection = self.intern_collection(op.collection);
        let key: Arc<str> = Arc::from(op.key);
        // No base version given: make the op conditional on the state the user saw, so a concurrent
        // change on the server is a conflict rather than silently overwritten (and a put of a document
        // this client never saw creates it, never overwrites another client's).
        let auto_base = op.base_version.is_none() && self.config.collection(&collection).versioned;
        let (base_version, create_only) = match (op.base_version, auto_base) {
            (Some(given), _) => (Some(given), false),
            (None, true) => {
                settling::precondition_on(&op.kind, self.view.confirmed(&collection, &key))
            }
            (None, false) => (None, false),
        };
        let record = OpRecord {
            format_version: FORMAT_VERSION,
            id,
            idempotency_key: self.new_uuid(),
            seq: self.next_seq,
            collection,
            key,
            kind: op.kind,
            payload: op.payload,
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
            create_only,
            horizon: None,
            uncharged_attempts: 0,
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
    /// A backing-off op skips the rest of its backoff. A retry is the app's (the user's) explicit
    /// intent, so it also lifts a wait the server asked for (`Retry-After`): one request, asked for by
    /// a person, is what such a wait may cost; an automatic resend never skips it.
    pub fn retry(&mut self, id: OpId, now: u64) -> Result<Vec<Effect>, CoreError> {
        self.resend(id, now, true)
    }

    /// [`Engine::retry`], lifting the server's wait only when `lift` (the app asked; a resolver
    /// function's automatic merge did not).
    fn resend(&mut self, id: OpId, now: u64, lift: bool) -> Result<Vec<Effect>, CoreError> {
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
        if lift {
            self.lift_block(&mut fx);
        }
        self.retry_one(id, lift, &mut fx);
        self.finish(&mut fx);
        Ok(fx)
    }

    /// [`Engine::retry`] for every failed, conflicted and backing-off op. O(number of ops). Ops of
    /// unknown outcome are left alone: resending one may apply it twice, which only the app can accept,
    /// op by op.
    pub fn retry_all(&mut self, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        self.lift_block(&mut fx);
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
        crate::order::sort_by_key(&mut ids, |(seq, id)| (0, *seq, id.sort_key()));
        for (_, id) in ids {
            self.retry_one(id, true, &mut fx);
        }
        self.finish(&mut fx);
        fx
    }

    /// Replaces the payload and precondition of a conflicted, failed or unknown op (the app's
    /// resolution, e.g. rebased on the server's doc) and retries it under a new idempotency key.
    ///
    /// `base_version: None` makes the op conditional on the server state the engine holds now (after a
    /// conflict: the server's current one): `If-Match` its version when the document exists, else
    /// `If-None-Match: *` for a put. So resolving a conflict against a deleted document re-creates it
    /// instead of naming the tombstone's version, which could never match.
    pub fn resolve(
        &mut self,
        id: OpId,
        payload: Json,
        base_version: Option<String>,
        now: u64,
    ) -> Result<Vec<Effect>, CoreError> {
        let entry = self.ops.get(&id).ok_or(CoreError::UnknownOp(id))?;
        let state = entry.record.state;
        if !matches!(
            state,
            OpState::Failed | OpState::Conflict | OpState::Unknown
        ) {
            return Err(CoreError::WrongState { id, state });
        }
        let (base, create_only) = match base_version {
            Some(given) => (Some(given), false),
            None => {
                let r = &entry.record;
                settling::precondition_on(&r.kind, self.view.confirmed(&r.collection, &r.key))
            }
        };
        let entry = self.ops.get_mut(&id).expect("checked above");
        entry.record.payload = payload;
        entry.record.base_version = base;
        entry.record.create_only = create_only;
        entry.record.auto_base = false;
        entry.size = UNSIZED;
        // A resolution is a new write, made against the server's current version (which includes the
        // old attempt if it was applied), so it gets a new idempotency key: under the old one the server
        // would replay the old outcome or refuse the changed payload.
        entry.record.maybe_applied = false;
        self.resend(id, now, false)
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
        let record = self.remove_op(id, true, &mut fx);
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
    /// they had never been enqueued. No `discarded` event is told, since for the app the enqueue simply
    /// failed; the view rolls back. Each gets a `Delete`, which cancels any later write of its record
    /// still waiting to commit (an ack of the op before it rewrites its precondition), so the op can
    /// never come back after a reload. Ops already confirmed stored are left alone.
    pub fn abandon_unstored(&mut self, ids: &[OpId], now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        for id in ids {
            if self.ops.get(id).is_some_and(|e| !e.durable) {
                self.remove_op(*id, false, &mut fx);
                fx.push(Effect::Delete(*id));
            }
        }
        self.finish(&mut fx);
        fx
    }

    /// Storage failed to commit (the runtime's code and message): nothing is sent until
    /// [`Engine::storage_recovered`], since no request may carry state that is not durable. The status
    /// shows `stalled` meanwhile.
    pub fn storage_failed(&mut self, error: StorageError, now: u64) -> Vec<Effect> {
        self.storage_error = Some(error);
        self.tick(now)
    }

    /// A commit succeeded again after [`Engine::storage_failed`]: sending resumes.
    pub fn storage_recovered(&mut self, now: u64) -> Vec<Effect> {
        self.storage_error = None;
        self.tick(now)
    }

    /// Takes an op out of the engine (not in flight): its indexes, counters and lane, then refolds its
    /// entity's view. `settles` when the app gave up on it (a discard), not when it never existed (an
    /// enqueue whose commit failed): only an op the running sync had to settle counts as settled.
    pub(super) fn remove_op(&mut self, id: OpId, settles: bool, fx: &mut Vec<Effect>) -> OpRecord {
        self.unslot(id);
        if self.ops[&id].record.state.is_halted() {
            // Its lane moves again: the ops behind it join the running sync.
            self.held -= self.followers(id);
        } else if self.behind_halted(id) {
            self.held -= 1;
        } else if settles {
            self.settled += 1;
        }
        let entry = self.take_entry(id);
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
            self.end_backoffs();
        }
        self.online = online;
        self.finish(&mut fx);
        fx
    }

    /// The platform says the network works again without this engine having seen it go (a service
    /// worker's `sync` event): as coming online, backing-off ops are retried at once, except where the
    /// server asked for a later time.
    pub fn reconnected(&mut self, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.advance(now, &mut fx);
        self.end_backoffs();
        self.online = true;
        self.finish(&mut fx);
        fx
    }

    /// Ends every jittered backoff (a wait the server asked for stays).
    fn end_backoffs(&mut self) {
        let waiting: Vec<OpId> = self.waiting.values().copied().collect();
        for id in waiting {
            self.unslot(id);
            let now = self.now;
            let entry = self.ops.get_mut(&id).expect("waiting op exists");
            entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
            self.schedule_if_head(id);
        }
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
            fx.push(Effect::PersistDoc(self.stored_doc(
                &collection,
                &key,
                &confirmed,
            )));
            self.show_to_held_head(&collection, &key, &confirmed, &mut fx);
            self.view.set_confirmed(&collection, &key, confirmed);
            self.refold_entity(&collection, &key, &mut fx);
        }
        self.finish(&mut fx);
        fx
    }

    /// A held op (conflict or unknown) heading the entity's lane shows the server's newest state, so
    /// the app decides on what the server holds now.
    fn show_to_held_head(
        &mut self,
        collection: &Arc<str>,
        key: &Arc<str>,
        state: &Confirmed,
        fx: &mut Vec<Effect>,
    ) {
        let ops = &self.ops;
        let head = self
            .lanes
            .get(self.lanes.hash(collection, key), |head| {
                ops[&head].record.entity() == (&**collection, &**key)
            })
            .map(|lane| lane.iter().next().expect("a lane is never empty"));
        let Some(entry) = head.and_then(|id| self.ops.get_mut(&id)) else {
            return;
        };
        if matches!(entry.record.state, OpState::Conflict | OpState::Unknown) {
            entry.record.server_doc = state.doc.as_ref().map(Json::value);
            entry.record.server_version = state.version.clone();
            fx.push(Effect::Persist(entry.record.clone()));
        }
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
        self.learn_retention(response, &mut fx);
        let info = rate_limit::parse(response, wall_now);
        let limited =
            response.status == 429 || (response.status == 503 && info.retry_after_ms.is_some());
        if limited {
            self.rate_limit_streak = self.rate_limit_streak.saturating_add(1);
            let delay = self.config.retry.rate_limit_delay_ms(
                self.rate_limit_streak,
                info.retry_after_ms.or(info.reset_ms),
                &mut self.random.jitter,
            );
            self.block(self.now.saturating_add(delay), &mut fx);
        }
        if let Some(ms) = self.config.retry.cap_server_wait(info.exhausted_for_ms()) {
            self.block(self.now.saturating_add(ms), &mut fx);
        }
        self.finish(&mut fx);
        fx
    }

    /// Whether a request may go out now: online, not paused, not rate-limited. The runtime asks before
    /// a pull.
    pub fn can_send(&self) -> bool {
        self.online && !self.paused && self.blocked_until.is_none() && self.storage_error.is_none()
    }
}
