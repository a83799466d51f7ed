//! The checks made as the tabs run: the status after every engine call, a conflict's cause, the
//! confirmed state never older than what the server delivered, and a request that carries only
//! durable state.

use std::collections::HashSet;

use outbox_core::{Batch, OpId};
use uuid::Uuid;

use crate::oracle::Fate;
use crate::store::version;
use crate::world::World;

impl World {
    /// After every engine call: the status says what the ops imply.
    pub fn check_status(&mut self, tab: usize) -> Result<(), String> {
        let t = &self.tabs[tab];
        let Some(engine) = t.engine.as_ref() else {
            return Ok(());
        };
        // Every installed engine was told the tab's switch before it was installed; `online_untold`
        // stays for a tab whose engine has not heard it yet.
        let switches = crate::oracle::status_rules::Switches {
            paused: t.paused,
            online: t.online || t.sync.online_untold,
        };
        let status = engine.status();
        // The checker orders a lane by seq, which is the lane order within one engine. With several
        // tabs two ops may share a seq, and an op already sent keeps the head over an earlier one
        // adopted after it: then the checker gets the lanes in the engine's order, numbered by place.
        let entities: HashSet<(&str, &str)> = if self.multi() {
            engine.ops().map(|r| r.entity()).collect()
        } else {
            HashSet::new()
        };
        let in_seq_order = entities.iter().all(|(collection, key)| {
            let lane = engine.ops_for(collection, key);
            lane.windows(2).all(|w| w[0].seq < w[1].seq)
        });
        if in_seq_order {
            let records: Vec<&outbox_core::OpRecord> = engine.ops().collect();
            return crate::oracle::status_rules::check_status(&status, &records, None, &switches)
                .map(|_| ());
        }
        let mut lanes = Vec::new();
        for (collection, key) in entities {
            for (place, record) in engine.ops_for(collection, key).into_iter().enumerate() {
                let mut record = record.clone();
                record.seq = place as u64;
                lanes.push(record);
            }
        }
        let records: Vec<&outbox_core::OpRecord> = lanes.iter().collect();
        crate::oracle::status_rules::check_status(&status, &records, None, &switches).map(|_| ())
    }

    /// A conflict needs another writer: a foreign client, or an op of ours that was applied without
    /// being acked (discarded, or of unknown outcome). A conflict with nobody is a false one (a
    /// precondition naming a tombstone's version, say), and so is one with our own tabs' acks.
    pub fn check_conflict_has_a_cause(&mut self, id: &OpId) -> Result<(), String> {
        let entity = &self.oracle.ops[id].entity;
        let foreign = self.server.foreign.get(entity).copied().unwrap_or(0);
        // Our own earlier application of this very op (its ack lost with a tab), or of one the app
        // let go of without an ack.
        let ours = self.server.ledger.contains_key(id)
            || self.oracle.lanes[entity].iter().any(|other| {
                self.server.ledger.contains_key(other) && self.oracle.ops[other].fate != Fate::Acked
            });
        if foreign == 0 && !ours {
            // With several tabs, an op made on the state its tab confirmed, behind an op of ours that
            // the leader acked before adopting it, must follow that ack (`follow_earlier_ack`): a 412
            // from our own write is a conflict of our tabs with each other.
            let acked_ours: Vec<OpId> = self.oracle.lanes[entity]
                .iter()
                .filter(|other| {
                    *other != id
                        && self.server.ledger.contains_key(*other)
                        && self.oracle.ops[*other].fate == Fate::Acked
                })
                .copied()
                .collect();
            if self.multi() && !acked_ours.is_empty() {
                if self.count_own_conflicts {
                    self.stats.own_tab_conflicts += 1;
                    return Ok(());
                }
                return Err(format!(
                    "op {id} (tab {}) met a conflict on {entity:?}, whose only cause is our own \
                     tabs' earlier acks of {:?}",
                    self.oracle.ops[id].tab,
                    &acked_ours[acked_ours.len().saturating_sub(3)..]
                ));
            }
            return Err(format!(
                "op {id} met a conflict on {entity:?}, which nobody else wrote"
            ));
        }
        Ok(())
    }

    /// The engine's confirmed state never falls below what the server delivered to it.
    pub fn check_confirmed(&mut self, tab: usize) -> Result<(), String> {
        let t = &self.tabs[tab];
        let Some(engine) = &t.engine else {
            return Ok(());
        };
        for (entity, seen) in &t.seen {
            let held = engine
                .confirmed(&entity.0, &entity.1)
                .map_or(0, |d| version(&d));
            if held < *seen {
                return Err(format!(
                    "tab {tab} holds version {held} of {entity:?} after the server delivered {seen}"
                ));
            }
        }
        Ok(())
    }

    /// No request carries state that is not durable: at the moment it leaves, the store holds each of
    /// its ops with the same key and precondition, marked in flight for this attempt, with a horizon
    /// no later than the retention counted from the latest time any tab's clock has read (a horizon
    /// counted from later would outlive the server's memory of the key).
    pub fn check_send(&mut self, tab: usize, batch: &Batch) -> Result<(), String> {
        if self.time < self.tabs[tab].rate_limited_until
            && !self.tabs[tab].formed_before_limit.contains(&batch.id)
        {
            return Err(format!(
                "tab {tab} sent batch {} at {} before the rate limit's end {}",
                batch.id, self.time, self.tabs[tab].rate_limited_until
            ));
        }
        for op in &batch.ops {
            let model = &self.oracle.ops[&op.id];
            // (A conditional resend cannot apply twice; and the declaration may have died with a tab
            // before it was stored, which the server's own checks cover.)
            if model.unknown_keys.contains(&op.idempotency_key) && op.base_version.is_none() {
                return Err(format!("op {} resent under a key declared unknown", op.id));
            }
            if matches!(model.fate, Fate::Rejected | Fate::Enqueuing) {
                return Err(format!(
                    "op {} sent while its enqueue was {:?}",
                    op.id, model.fate
                ));
            }
            let Some(stored) = self.store.record(&op.id) else {
                return Err(format!("op {} sent but not in the store", op.id));
            };
            if batch.ops.len() == 1
                && self
                    .store
                    .own_attempts(&op.id)
                    .is_some_and(|a| a < op.attempt)
            {
                self.stats.sent_marked_ahead += 1;
            }
            let sent_body = crate::server::body_text(op).unwrap_or_default();
            let stored_body = if stored.kind == outbox_core::OpKind::Delete {
                String::new()
            } else {
                stored.payload.text().to_owned()
            };
            let latest_horizon = self
                .time
                .saturating_add_signed(self.clock_ahead_ms)
                .saturating_add(self.profile.safe_retention_ms());
            if stored.attempts < op.attempt || stored.horizon.is_none_or(|h| h > latest_horizon) {
                return Err(format!(
                    "op {} left as attempt {} (horizon at most {latest_horizon}), stored as attempt {} \
                     with horizon {:?}",
                    op.id, op.attempt, stored.attempts, stored.horizon
                ));
            }
            let sent = self.sent.entry(op.id).or_insert(Sent {
                attempt: 0,
                key: op.idempotency_key,
                first_sent: self.time,
            });
            if sent.key != op.idempotency_key {
                (sent.key, sent.first_sent) = (op.idempotency_key, self.time);
            }
            sent.attempt = sent.attempt.max(op.attempt);
            if stored.state != outbox_core::OpState::Inflight
                || stored.idempotency_key != op.idempotency_key
                || stored.base_version != op.base_version
                || stored.create_only != op.create_only
                || stored_body != sent_body
            {
                return Err(format!(
                    "op {} left carrying state that is not durable: sent key {} base {:?} create {}, \
                     stored {:?} key {} base {:?} create {}",
                    op.id,
                    op.idempotency_key,
                    op.base_version,
                    op.create_only,
                    stored.state,
                    stored.idempotency_key,
                    stored.base_version,
                    stored.create_only
                ));
            }
        }
        Ok(())
    }

    /// After a commit: what it wrote of a sent op, or what it left of one by dropping its batch's mark,
    /// still reads (as a restore reads it) as sent at least as often as its requests that left, and,
    /// under the key they carried, with a horizon counted from no later than the first of them. A
    /// write that forgot a send would let a restarted engine resend after the server forgot the key.
    pub fn check_durable_sends(&self, ids: &[OpId]) -> Result<(), String> {
        for id in ids {
            let (Some(sent), Some(stored)) = (self.sent.get(id), self.store.record(id)) else {
                continue;
            };
            let latest_horizon = sent
                .first_sent
                .saturating_add_signed(self.clock_ahead_ms)
                .saturating_add(self.profile.safe_retention_ms());
            let same_key = stored.idempotency_key == sent.key;
            if stored.attempts < sent.attempt
                || (same_key && stored.horizon.is_none_or(|h| h > latest_horizon))
            {
                return Err(format!(
                    "op {id}, sent as attempt {} (first under key {} at {}), is stored as attempt {} \
                     with horizon {:?}: a commit forgot a send",
                    sent.attempt, sent.key, sent.first_sent, stored.attempts, stored.horizon
                ));
            }
        }
        Ok(())
    }
}

/// The requests of one op that left, as the store must remember them ([`World::check_durable_sends`]).
pub struct Sent {
    /// The highest attempt number that left.
    pub attempt: u32,
    /// The key of the latest request.
    pub key: Uuid,
    /// When the first request under that key left (true time).
    pub first_sent: u64,
}
