//! Settling: what one answer to a send does to its op (ack, backoff, halt), and manual retries.

use super::*;

impl Engine {
    /// Applies the outcome of one in-flight op.
    pub(super) fn settle(
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

    pub(super) fn ack(&mut self, id: OpId, response: Option<&Response>, fx: &mut Vec<Effect>) {
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
    pub(super) fn confirmed_after_ack(
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
    pub(super) fn follow_acked_version(
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

    /// A transient failure: schedule the next attempt by the retry policy, or give up.
    pub(super) fn back_off(
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
    pub(super) fn reschedule(
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
    pub(super) fn halt(
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

    pub(super) fn retry_one(&mut self, id: OpId, fx: &mut Vec<Effect>) {
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
}

/// Builds the app-facing error for a non-ack outcome.
pub(super) fn op_error(
    class: OutcomeClass,
    response: Option<&Response>,
    reason: Option<&str>,
) -> OpError {
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
