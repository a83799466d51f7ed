//! The ends of a case: a crash and the restore that follows, and the settling and final checks.

use super::*;

impl Sim {
    /// The tab dies. In-flight requests may or may not have reached the server; the engine is rebuilt
    /// from the store alone, with a new seed.
    pub(super) fn crash(&mut self, applied: u64) {
        let mut bit = 0;
        self.formed.clear();
        // Whatever had not committed is gone; enqueues that never reached the store never happened.
        self.queue = EffectQueue::new();
        let unstored: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(_, m)| !m.stored)
            .map(|(id, _)| *id)
            .collect();
        for id in unstored {
            let m = self.ops.remove(&id).unwrap();
            self.lanes.get_mut(&m.lane).unwrap().retain(|o| *o != id);
        }
        // An ack or a discard whose delete had not committed comes back with the store.
        for (id, m) in self.ops.iter_mut() {
            if self.store.read(id).is_some() {
                m.acked = false;
                m.discarded = false;
            }
        }
        for batch in std::mem::take(&mut self.in_flight) {
            for op in &batch.ops {
                if applied >> (bit % 64) & 1 == 1 {
                    self.server_apply(op.id, op.idempotency_key);
                }
                bit += 1;
            }
        }
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.engine =
            Engine::restore_from(self.cfg.clone(), self.seed, self.store.stored(), self.now)
                .unwrap();
        // The model reads the records as the restore does: through the marks of pushes in flight.
        let records = self.store.read_all();
        self.status_model.restart(&records);
        // What survives a crash is what the stored records prove: a backoff or a Retry-After that had
        // not committed is gone with the tab (resending under the same key is harmless).
        self.floor_quota = 0;
        let stored: HashMap<OpId, &OpRecord> = records.iter().map(|r| (r.id, r)).collect();
        self.op_backoff
            .retain(|id, _| stored.get(id).is_some_and(|r| r.next_attempt_at.is_some()));
        for (id, at) in self.op_backoff.iter_mut() {
            *at = (*at).min(stored[id].next_attempt_at.unwrap_or(0));
        }
        self.op_floor
            .retain(|id, _| stored.get(id).is_some_and(|r| r.not_before.is_some()));
        for (id, at) in self.op_floor.iter_mut() {
            *at = (*at).min(stored[id].not_before.unwrap_or(0));
        }
        self.engine_blocked = records
            .iter()
            .filter(|r| r.last_error.as_ref().map(|e| e.class) == Some(OutcomeClass::RateLimited))
            .filter_map(|r| r.not_before)
            .max()
            .unwrap_or(0);
        self.floor_429 = self.floor_429.min(self.engine_blocked.max(self.now));
        // The tab's switches come back before anything is checked (the status depends on them).
        let mut fx = Vec::new();
        if !self.online {
            fx.extend(self.engine.set_online(false, self.now));
        }
        if self.paused {
            fx.extend(self.engine.pause(self.now));
        }
        self.apply(fx);
        let fx = self.engine.drain(self.now);
        self.apply(fx);
    }

    /// Lets time pass and acks everything until nothing moves.
    pub(super) fn settle(&mut self) {
        for _ in 0..1_000 {
            self.now += 3_600_000;
            let fx = self.engine.tick(self.now);
            self.apply(fx);
            self.flush();
            if self.in_flight.is_empty() {
                let movable = self.engine.ops().any(|r| {
                    matches!(
                        r.state,
                        OpState::Pending | OpState::Backoff | OpState::Inflight
                    ) && self.lane_head_state(&r.key) != Some(OpState::Failed)
                        && self.lane_head_state(&r.key) != Some(OpState::Conflict)
                });
                if !movable {
                    return;
                }
            }
            while !self.in_flight.is_empty() {
                self.respond(0, &[Outcome::Ack], true);
                self.flush();
            }
        }
        panic!("the engine did not settle");
    }

    pub(super) fn lane_head_state(&self, key: &str) -> Option<OpState> {
        self.engine.ops_for("todos", key).first().map(|r| r.state)
    }

    pub(super) fn finish(&mut self) {
        if !self.online {
            self.step(&Action::SetOnline(true));
        }
        if self.paused {
            self.step(&Action::Pause(false));
        }
        self.settle();
        // A halted lane never blocks another: whatever is left sits behind a failed/conflicted head.
        for lane in 0..LANES {
            let ops = self.engine.ops_for("todos", &lane_key(lane));
            if let Some(head) = ops.first() {
                assert!(
                    matches!(head.state, OpState::Failed | OpState::Conflict),
                    "lane {lane} is stuck behind a {:?} head",
                    head.state
                );
            }
        }
        // Nothing lost: once the app retries everything, every committed op is acked or was discarded.
        self.step(&Action::RetryAll);
        self.settle();
        self.flush();
        for lane in 0..LANES {
            let left = self.engine.ops_for("todos", &lane_key(lane)).len();
            assert_eq!(left, 0, "lane {lane} still holds ops after retry_all");
        }
        for (id, m) in &self.ops {
            assert!(m.acked ^ m.discarded, "op {id} was lost: {m:?}");
            if m.discarded {
                continue;
            }
            assert!(self.applied_ops.contains_key(id));
        }
        assert!(self.store.is_empty());
    }
}
