//! Settling: what one answer to a send does to its op, and what an ack does to the ops behind it.

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
        let past_horizon = entry.sent_past_horizon;
        if class != OutcomeClass::Auth {
            self.ops.get_mut(&id).expect("exists").auth_retried = false;
        }
        if class == OutcomeClass::Ack {
            self.ack(id, response, fx);
            return;
        }
        let error = op_error(class, response, reason);
        if past_horizon && matches!(class, OutcomeClass::Conflict | OutcomeClass::Permanent) {
            // The server may have forgotten an earlier application under this key: a refusal of this
            // attempt (a 412 against what may be our own write) says nothing about that one.
            let current = response.and_then(conflicts::server_current);
            self.mark_unknown(id, Some((error, current)), fx);
            return;
        }
        let now = self.now;
        let policy = &self.config.retry;
        let retry_after = policy
            .cap_server_wait(info.retry_after_ms)
            .map(|ms| now.saturating_add(ms));
        match class {
            OutcomeClass::Ack => unreachable!("handled above"),
            OutcomeClass::Transient => {
                self.ops.get_mut(&id).expect("exists").record.maybe_applied = true;
                self.back_off(id, error, retry_after, fx);
            }
            OutcomeClass::RateLimited => {
                self.rate_limit_streak = self.rate_limit_streak.saturating_add(1);
                let hint = info
                    .retry_after_ms
                    .or(info.exhausted_for_ms())
                    .or(info.reset_ms);
                let delay = self.config.retry.rate_limit_delay_ms(
                    self.rate_limit_streak,
                    hint,
                    &mut self.random.jitter,
                );
                let until = now.saturating_add(delay);
                self.block(until, fx);
                // Waiting out a rate limit is not the op's failure: the attempt is not charged to it.
                let entry = self.ops.get_mut(&id).expect("exists");
                entry.record.uncharged_attempts = entry.record.uncharged_attempts.saturating_add(1);
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
        let entry = self.take_entry(id);
        self.settled += 1;
        debug_assert!(
            self.lanes.is_head(entry.lane_hash, id),
            "only lane heads are sent"
        );
        self.remove_head(entry.lane_hash, id);
        self.last_synced_at = Some(self.now);
        self.rate_limit_streak = 0;
        let record = entry.record;
        let replayed = response.is_some_and(Response::is_replay);
        let confirmed = match response.filter(|r| !r.is_success()) {
            // A delete answered 404/410: the goal state was reached without this op; the server's
            // `current` (a tombstone's version) is the state, if it said.
            Some(gone) => conflicts::server_current(gone)
                .filter(|c| c.version.is_some())
                .unwrap_or_default(),
            None => {
                let version = response.and_then(|r| r.header("etag")).map(str::to_string);
                self.confirmed_after_ack(&record, version, response)
            }
        };
        let version = confirmed.version.clone();
        self.follow_acked_version(&record, &confirmed, fx);
        self.remember_ack(&record, &confirmed);
        fx.push(Effect::Delete(id));
        fx.push(Effect::Emit(Event::Acked {
            id,
            collection: record.collection.clone(),
            key: record.key.clone(),
            version: version.clone(),
            doc: confirmed.doc.clone(),
        }));
        // A replayed answer can be older than what a pull has delivered since: it must not put the
        // confirmed state back.
        if !self.confirm(&record.collection, &record.key, confirmed, replayed, fx) {
            // A pull brought this very version first: stored again, with the chain this ack
            // extended, which the next leader needs (`ack_chain.rs`). A newer one is someone else's
            // change, past which no chain of ours leads.
            let held = self.view.confirmed(&record.collection, &record.key);
            if let Some(held) = held.filter(|held| held.version == version) {
                fx.push(Effect::PersistDoc(self.stored_doc(
                    &record.collection,
                    &record.key,
                    held,
                )));
            }
        }
        self.refold_entity(&record.collection, &record.key, fx);
    }

    /// Makes `confirmed` the entity's confirmed state, and stores it, unless the state held is newer
    /// ([`view::supersedes`]). Returns whether it did.
    pub(super) fn confirm(
        &mut self,
        collection: &Arc<str>,
        key: &Arc<str>,
        confirmed: Confirmed,
        replayed: bool,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let held = self.view.confirmed(collection, key);
        let newer = held.is_none_or(|held| {
            view::supersedes(
                confirmed.version.as_deref(),
                held.version.as_deref(),
                replayed,
            )
        });
        if newer {
            fx.push(Effect::PersistDoc(
                self.stored_doc(collection, key, &confirmed),
            ));
            self.view.set_confirmed(collection, key, confirmed);
        }
        newer
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
            (_, Some(body)) => Some(body.clone()),
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

    /// The ops queued behind an acknowledged one were made on top of it. Those whose precondition the
    /// engine derived move to the state the ack produced (its version, or "create" after a delete);
    /// otherwise the server would see our own previous write as a conflicting change. A follower that
    /// already names a newer version (a pull delivered it after the ack's write) keeps it: it was made
    /// on that state.
    pub(super) fn follow_acked_version(
        &mut self,
        acked: &OpRecord,
        result: &Confirmed,
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
                r.auto_base
                    && match (&r.base_version, &result.version) {
                        (None, _) => true,
                        (Some(base), Some(produced)) => match view::version_order(produced, base) {
                            Some(order) => order == std::cmp::Ordering::Greater,
                            // Opaque versions: only what was derived from the same state as the ack.
                            None => r.base_version == acked.base_version,
                        },
                        (Some(_), None) => r.base_version == acked.base_version,
                    }
            })
            .collect();
        for id in followers {
            let entry = self.ops.get_mut(&id).expect("lane op exists");
            let (base, create_only) = precondition_on(&entry.record.kind, Some(result));
            if entry.record.base_version == base && entry.record.create_only == create_only {
                continue;
            }
            entry.record.base_version = base;
            entry.record.create_only = create_only;
            fx.push(Effect::Persist(entry.record.clone()));
        }
    }

    /// Reads the server's `Idempotency-Retention` statement. A shorter retention than the one relied
    /// on so far brings the horizons of keys already sent closer by the difference.
    pub(super) fn learn_retention(&mut self, response: &Response, fx: &mut Vec<Effect>) {
        let Some(stated) = response.idempotency_retention_ms() else {
            return;
        };
        if self.stated_retention_ms == Some(stated) {
            return;
        }
        let before = self.safe_retention_ms();
        self.stated_retention_ms = Some(stated);
        fx.push(Effect::PersistRetention(stated));
        let shorter_by = before.saturating_sub(self.safe_retention_ms());
        if shorter_by == 0 {
            return;
        }
        let ids: Vec<OpId> = self
            .ops
            .values()
            .filter(|e| e.record.horizon.is_some())
            .map(|e| e.record.id)
            .collect();
        for id in ids {
            let entry = self.ops.get_mut(&id).expect("listed above");
            entry.record.horizon = entry.record.horizon.map(|h| h.saturating_sub(shorter_by));
            fx.push(Effect::Persist(entry.record.clone()));
        }
    }
}

/// The precondition an op made on top of `state` carries when the engine derives it: `If-Match` its
/// version when the document exists, else `If-None-Match: *` for a put (create, never overwrite a
/// document this client never saw). A patch or delete of a document not known to exist goes
/// unconditional: the server answers 404/410 if it is absent. Returns `(base_version, create_only)`.
///
/// A live document whose version the server never gave leaves nothing to match: unconditional.
/// A weak or malformed ETag (`W/"3"`, `abc`) names no version `If-Match` can match (it compares strongly):
/// unconditional too, rather than a conflict on every edit.
pub(super) fn precondition_on(kind: &OpKind, state: Option<&Confirmed>) -> (Option<String>, bool) {
    match state {
        Some(state) => precondition_after(kind, &state.version, state.doc.is_some()),
        None => (None, *kind == OpKind::Put),
    }
}

/// [`precondition_on`] a known state: its `version`, and whether the document exists (`live`).
pub(super) fn precondition_after(
    kind: &OpKind,
    version: &Option<String>,
    live: bool,
) -> (Option<String>, bool) {
    if live {
        (version.clone().filter(|v| view::is_strong_etag(v)), false)
    } else {
        (None, *kind == OpKind::Put)
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
            code: r.problem_type(),
            message: r
                .problem_message()
                .unwrap_or_else(|| format!("HTTP {}", r.status)),
        },
    }
}
