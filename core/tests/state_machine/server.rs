//! The model server of the state-machine test: it applies each key once and replays afterwards, and
//! answers with the outcome the action drew.

use super::*;

impl Sim {
    /// Applies an op under a key, like the reference server: once per key, replaying afterwards.
    pub(super) fn server_apply(&mut self, id: OpId, key: Uuid) {
        if let Some(owner) = self.applied_keys.get(&key) {
            assert_eq!(*owner, id);
            return;
        }
        if let Some(other) = self.applied_ops.get(&id) {
            panic!("op {id} applied twice, under {other} and {key}");
        }
        let lane = &self.lanes[&self.ops[&id].lane];
        for prior in lane.iter().take_while(|p| **p != id) {
            assert!(
                self.applied_ops.contains_key(prior) || self.ops[prior].discarded,
                "server applied {id} before an earlier op of its entity"
            );
        }
        self.applied_keys.insert(key, id);
        self.applied_ops.insert(id, key);
    }

    /// The server's answer to one op, or `None` when the response is lost.
    pub(super) fn answer(
        &mut self,
        id: OpId,
        key: Uuid,
        outcome: &Outcome,
        whole: bool,
    ) -> Option<Response> {
        let replay = self.applied_keys.contains_key(&key);
        let now = self.now;
        Some(match outcome {
            Outcome::Ack => {
                self.server_apply(id, key);
                Response::status(200).with_header("ETag", "\"v\"")
            }
            Outcome::QuotaExhausted(s) => {
                self.server_apply(id, key);
                if !whole {
                    return Some(Response::status(200));
                }
                self.floor_quota = self.floor_quota.max(now + u64::from(*s) * 1000);
                Response::status(200)
                    .with_header("X-RateLimit-Remaining", "0")
                    .with_header("X-RateLimit-Reset", s.to_string())
            }
            Outcome::Lost { applied } => {
                if *applied {
                    self.server_apply(id, key);
                }
                return None;
            }
            Outcome::RateLimited(s) => {
                self.floor_429 = self.floor_429.max(now + u64::from(*s) * 1000);
                Response::status(429).with_header("Retry-After", s.to_string())
            }
            Outcome::Auth => Response::status(401),
            // A whole-batch 500 is the server being down: it looked at no op.
            Outcome::Transient if whole => Response::status(500),
            // Past authentication and rate limiting, a known key gets its stored response replayed.
            _ if replay => Response::status(200),
            Outcome::Transient => Response::status(500),
            Outcome::TransientRetryAfter(s) => {
                let floor = self.op_floor.entry(id).or_default();
                *floor = (*floor).max(now + u64::from(*s) * 1000);
                Response::status(500).with_header("Retry-After", s.to_string())
            }
            Outcome::Conflict => Response::status(412).with_body(json!({ "current": { "v": 9 } })),
            Outcome::Permanent => Response::status(422),
            Outcome::KeyInFlight => {
                Response::status(409).with_body(json!({ "type": KEY_IN_FLIGHT_PROBLEM_TYPE }))
            }
        })
    }

    pub(super) fn respond(&mut self, pick: usize, outcomes: &[Outcome], whole: bool) {
        if self.in_flight.is_empty() {
            return;
        }
        let batch = self.in_flight.remove(pick % self.in_flight.len());
        self.formed.retain(|b| b.id != batch.id);
        let first = &outcomes[0];
        // Whole-batch answers are the ones a server gives before looking at the ops.
        let whole = batch.ops.len() == 1
            || (whole
                && matches!(
                    first,
                    Outcome::Ack
                        | Outcome::QuotaExhausted(_)
                        | Outcome::RateLimited(_)
                        | Outcome::Auth
                        | Outcome::Lost { .. }
                        | Outcome::Transient
                ));
        let fx = if whole {
            let mut response = None;
            for op in &batch.ops {
                response = self.answer(op.id, op.idempotency_key, first, true);
            }
            match response {
                Some(r) => self
                    .engine
                    .on_reply(batch.id, &Reply::whole(r), self.now, WALL),
                None => self.engine.on_network_error(batch.id, self.now),
            }
        } else {
            let mut results = Vec::new();
            for (i, op) in batch.ops.iter().enumerate() {
                let outcome = &outcomes[i % outcomes.len()];
                if let Some(response) = self.answer(op.id, op.idempotency_key, outcome, false) {
                    results.push(OpResult {
                        id: op.id,
                        response,
                    });
                }
            }
            self.engine
                .on_reply(batch.id, &Reply::per_op(results), self.now, WALL)
        };
        let fx = fx.expect("the batch was in flight");
        self.apply(fx);
    }
}
