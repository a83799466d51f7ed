//! Ops that wait or stop: backoff, the halted states (failed, conflict, unknown), and the app's manual
//! retry that moves them on.

use super::*;

impl Engine {
    /// A transient failure: schedule the next attempt by the retry policy, or give up.
    pub(super) fn back_off(
        &mut self,
        id: OpId,
        error: OpError,
        server_floor: Option<u64>,
        fx: &mut Vec<Effect>,
    ) {
        let record = &self.ops[&id].record;
        // The budget (and the backoff's window) counts from the app's last retry: `charged_attempts`.
        let charged = record.charged_attempts();
        let decision = self.config.retry.decide(
            charged,
            record.age_origin(),
            self.now,
            server_floor,
            &mut self.random.jitter,
        );
        match decision {
            RetryDecision::At(at) => self.reschedule(id, at, server_floor, error, fx),
            RetryDecision::GiveUp => {
                let error = OpError {
                    message: format!("gave up after {charged} attempts: {}", error.message),
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
        self.note_error(id);
        self.schedule_if_head(id);
    }

    /// Dead-letters or holds an op (in flight, or ready and found unknown); its lane stops behind it. The
    /// op is settled for the running sync, and the ops behind it are held.
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
        debug_assert!(to.is_halted() && !self.ops[&id].record.state.is_halted());
        self.held += self.followers(id);
        self.settled += 1;
        self.note_error(id);
        let entry = self.ops.get_mut(&id).expect("exists");
        set_state(&mut self.counts, &mut entry.record, to);
        entry.record.last_error = Some(error.clone());
        entry.record.next_attempt_at = None;
        entry.record.not_before = not_before.filter(|t| *t > now);
        entry.record.server_doc = server_doc.clone();
        fx.push(Effect::Persist(entry.record.clone()));
        let (collection, key) = (entry.record.collection.clone(), entry.record.key.clone());
        fx.push(Effect::Emit(match to {
            OpState::Conflict => Event::Conflict {
                id,
                error,
                server_doc,
                server_version: entry.record.server_version.clone(),
                resolution: ConflictResolution::Held,
            },
            OpState::Unknown => Event::Unknown {
                id,
                collection: collection.clone(),
                key: key.clone(),
                error,
                server_doc,
                server_version: entry.record.server_version.clone(),
            },
            _ => Event::Failed {
                id,
                collection: collection.clone(),
                key: key.clone(),
                error,
            },
        }));
        if to == OpState::Failed {
            // Rolled back: the view no longer shows it.
            self.refold_entity(&collection, &key, fx);
        }
    }

    /// The op may have been applied under a key the server may have forgotten: hold it as unknown, with
    /// the server's current state when an answer carried it (else the last confirmed one), and never
    /// resend it under that key.
    pub(super) fn mark_unknown(
        &mut self,
        id: OpId,
        answer: Option<(OpError, Option<Confirmed>)>,
        fx: &mut Vec<Effect>,
    ) {
        let record = &self.ops[&id].record;
        let (collection, key) = (record.collection.clone(), record.key.clone());
        let (error, current) = answer.unwrap_or_else(|| {
            let error = OpError {
                class: record
                    .last_error
                    .as_ref()
                    .map_or(OutcomeClass::Transient, |e| e.class),
                status: None,
                code: Some("outcome_unknown".to_owned()),
                message: "no answer came before the server's idempotency retention passed: the op \
                          may or may not have been applied, and resending it could apply it twice"
                    .to_owned(),
            };
            (error, None)
        });
        if let Some(current) = &current {
            self.confirm(&collection, &key, current.clone(), false, fx);
        }
        let state = current.or_else(|| self.view.confirmed(&collection, &key).cloned());
        let (server_doc, server_version) = state.map_or((None, None), |s| {
            (s.doc.as_ref().map(Json::value), s.version)
        });
        self.ops.get_mut(&id).expect("exists").record.server_version = server_version;
        self.halt(id, OpState::Unknown, error, server_doc, None, fx);
    }

    /// Makes one held op ready; `lift` (the app's explicit retry) also drops the server's requested
    /// wait for it.
    pub(super) fn retry_one(&mut self, id: OpId, lift: bool, fx: &mut Vec<Effect>) {
        let now = self.now;
        let Some(entry) = self.ops.get(&id) else {
            return;
        };
        match entry.record.state {
            OpState::Pending | OpState::Inflight => {}
            OpState::Backoff => {
                self.unslot(id);
                let entry = self.ops.get_mut(&id).expect("exists");
                if lift {
                    // The app's explicit retry skips the server's requested wait too (`Engine::retry`).
                    entry.record.not_before = None;
                    fx.push(Effect::Persist(entry.record.clone()));
                }
                entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
                self.schedule_if_head(id);
            }
            OpState::Failed | OpState::Conflict | OpState::Unknown => {
                // A new key only when no attempt under the old one can have been applied; an unknown op
                // is retried because the app says so, knowing it may apply twice, and its old key is
                // forgotten by the server anyway.
                let fresh_key =
                    !entry.record.maybe_applied || entry.record.state == OpState::Unknown;
                let new_key = fresh_key.then(|| self.new_uuid());
                // The lane moves again: the op and those behind it are to settle in the running sync.
                self.held -= self.followers(id);
                let entry = self.ops.get_mut(&id).expect("exists");
                if let Some(key) = new_key {
                    // The server definitively refused every attempt under the old key, and may have
                    // stored that refusal against it: a new key lets the retry be judged afresh. By
                    // the barrier rule the new key is durable before any request carries it.
                    entry.record.idempotency_key = key;
                    entry.record.horizon = None;
                    entry.record.maybe_applied = false;
                }
                set_state(&mut self.counts, &mut entry.record, OpState::Pending);
                // A fresh budget; `attempts` itself goes on counting.
                entry.record.uncharged_attempts = entry.record.attempts;
                entry.record.retried_at = Some(now);
                entry.record.server_doc = None;
                entry.record.server_version = None;
                if lift {
                    entry.record.not_before = None;
                }
                entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
                entry.auth_retried = false;
                entry.sent_past_horizon = false;
                fx.push(Effect::Persist(entry.record.clone()));
                let (collection, key) = (entry.record.collection.clone(), entry.record.key.clone());
                self.schedule_if_head(id);
                // A failed op rejoins the view; a resolved one may carry a new payload.
                self.refold_entity(&collection, &key, fx);
            }
        }
    }
}
