//! Randomized state-machine test: the engine against a reference model of the server, the store and
//! the invariants of DESIGN.md.
//!
//! Effects run as the runtime runs them, through the core's `EffectQueue`: writes reach the fake store
//! only when a group commits (or never, when its commit fails or the tab crashes first), and a send
//! leaves only when the queue releases it. A crash therefore loses exactly what the runtime would lose.
//!
//! Each case runs a random sequence of commands and observations — enqueue, commits (succeeding or
//! failing),
//! send outcomes (ack, transient, transient with Retry-After, 429 with Retry-After, conflict, permanent,
//! lost response applied or not, 409 key-in-flight, 401, quota exhausted), time jumps, crash-and-reopen
//! from the fake store, retry, retry-all, discard, online/offline and pause — then lets everything
//! settle. It checks, at every step:
//! * per-entity order: the server applies an op only after every earlier op of its entity was applied
//!   or discarded, and an op is sent only as its lane's head, one per lane in flight;
//! * exactly-once: no op is applied under two keys, no key belongs to two ops, no op is acked twice,
//!   and nothing is acked that the server did not apply;
//! * no send before `next_attempt_at`, before a server's `Retry-After`, or while blocked/offline/paused;
//! * a released send's ops are in the store, marked in flight under the key they carry;
//! * the store mirrors the engine whenever nothing waits to commit, and the status counters match the
//!   model;
//! * the status is exactly what the ops imply: counts, the state table, progress, `last_error`, and
//!   `drained` when a sync ends (`state_machine/status.rs`);
//!
//! and at the end:
//! * a failed or conflicted lane never blocks another: after settling, only ops behind a halted head
//!   remain;
//! * nothing is lost: after `retry_all` and settling, every committed op that was not discarded is acked.
//!
//! `OUTBOX_PROPTEST_CASES` sets the number of cases (default 1,000).

use std::collections::{HashMap, HashSet};

use outbox_core::{
    Batch, CollectionConfig, Config, ConflictStrategy, Effect, EffectQueue, Engine, Event, NewOp,
    OpId, OpKind, OpRecord, OpResult, OpState, OutcomeClass, Reply, Response, RetryPolicy,
    KEY_IN_FLIGHT_PROBLEM_TYPE,
};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

#[path = "state_machine/lifecycle.rs"]
mod lifecycle;
#[path = "state_machine/server.rs"]
mod server;
#[path = "state_machine/status.rs"]
mod status;
#[path = "state_machine/store.rs"]
mod store;

const WALL: u64 = 1_700_000_000_000;
const LANES: u8 = 4;

#[derive(Clone, Debug)]
enum Outcome {
    Ack,
    /// 500.
    Transient,
    /// 500 with `Retry-After: n`.
    TransientRetryAfter(u8),
    /// 429 with `Retry-After: n`.
    RateLimited(u8),
    /// 412 with the server's doc.
    Conflict,
    /// 422.
    Permanent,
    /// The response never arrives; the server applied the op or not.
    Lost {
        applied: bool,
    },
    /// 409 "key in flight".
    KeyInFlight,
    /// 401.
    Auth,
    /// 200 with `X-RateLimit-Remaining: 0` and a reset in n seconds.
    QuotaExhausted(u8),
}

#[derive(Clone, Debug)]
enum Action {
    Enqueue {
        lane: u8,
        delete: bool,
    },
    /// The next write group commits, or its transaction fails.
    Commit {
        fail: bool,
    },
    Respond {
        pick: usize,
        outcomes: Vec<Outcome>,
        whole: bool,
    },
    Advance(u32),
    Crash {
        applied: u64,
    },
    Retry(usize),
    RetryAll,
    Discard(usize),
    SetOnline(bool),
    Pause(bool),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Ack),
        2 => Just(Outcome::Transient),
        1 => (0u8..20).prop_map(Outcome::TransientRetryAfter),
        1 => (0u8..20).prop_map(Outcome::RateLimited),
        1 => Just(Outcome::Conflict),
        1 => Just(Outcome::Permanent),
        2 => any::<bool>().prop_map(|applied| Outcome::Lost { applied }),
        1 => Just(Outcome::KeyInFlight),
        1 => Just(Outcome::Auth),
        1 => (0u8..20).prop_map(Outcome::QuotaExhausted),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => (0..LANES, prop::bool::weighted(0.2))
            .prop_map(|(lane, delete)| Action::Enqueue { lane, delete }),
        6 => prop::bool::weighted(0.1).prop_map(|fail| Action::Commit { fail }),
        7 => (any::<usize>(), prop::collection::vec(outcome(), 1..4), any::<bool>())
            .prop_map(|(pick, outcomes, whole)| Action::Respond { pick, outcomes, whole }),
        3 => prop_oneof![0u32..3_000, 0u32..120_000].prop_map(Action::Advance),
        1 => any::<u64>().prop_map(|applied| Action::Crash { applied }),
        1 => any::<usize>().prop_map(Action::Retry),
        1 => Just(Action::RetryAll),
        1 => any::<usize>().prop_map(Action::Discard),
        1 => any::<bool>().prop_map(Action::SetOnline),
        1 => any::<bool>().prop_map(Action::Pause),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        1usize..4,
        1usize..4,
        prop_oneof![Just(None), (1u32..4).prop_map(Some)],
    )
        .prop_map(|(max_ops, max_in_flight, max_attempts)| Config {
            max_ops,
            max_in_flight,
            retry: RetryPolicy {
                base_ms: 100,
                cap_ms: 5_000,
                max_attempts,
                max_age_ms: None,
                ..RetryPolicy::default()
            },
            // This model holds conflicts for the app and sends ops unconditionally; conflict strategies
            // and automatic base versions are covered by tests/view_model.rs.
            default_collection: CollectionConfig {
                conflict: ConflictStrategy::Manual,
                versioned: false,
            },
            ..Config::default()
        })
}

fn lane_key(lane: u8) -> String {
    lane.to_string()
}

/// What the model knows about one op.
#[derive(Debug, Default)]
struct ModelOp {
    lane: u8,
    /// Its enqueue's commit succeeded.
    stored: bool,
    acked: bool,
    discarded: bool,
}

struct Sim {
    cfg: Config,
    engine: Engine,
    seed: u64,
    now: u64,
    online: bool,
    paused: bool,
    /// The fake IndexedDB.
    store: store::Store,
    /// Orders effects as the runtime does.
    queue: EffectQueue,
    /// Batches the engine formed and has not had an answer for (some still held by the queue).
    formed: Vec<Batch>,
    /// Batches the fake transport holds (released by the queue).
    in_flight: Vec<Batch>,
    ops: HashMap<OpId, ModelOp>,
    /// Committed ops per lane, in enqueue order.
    lanes: HashMap<u8, Vec<OpId>>,
    /// The server's idempotency store: key -> op it applied.
    applied_keys: HashMap<Uuid, OpId>,
    /// op -> the key it was applied under.
    applied_ops: HashMap<OpId, Uuid>,
    /// Every key the engine ever used, with its op.
    key_owner: HashMap<Uuid, OpId>,
    /// No send before this (server 429 Retry-After; survives crashes through the stored records).
    floor_429: u64,
    /// No send before this (quota exhausted); the engine cannot know it after a crash.
    floor_quota: u64,
    /// No send of this op before this (its own Retry-After).
    op_floor: HashMap<OpId, u64>,
    /// No send of this op before this (its backoff), unless cleared by coming online or a retry.
    op_backoff: HashMap<OpId, u64>,
    /// The engine's own announced block.
    engine_blocked: u64,
    /// What the status check needs to remember (`state_machine/status.rs`).
    status_model: status::StatusModel,
}

impl Sim {
    fn new(cfg: Config, seed: u64) -> Sim {
        Sim {
            engine: Engine::new(cfg.clone(), seed).unwrap(),
            cfg,
            seed,
            now: 0,
            online: true,
            paused: false,
            store: store::Store::default(),
            queue: EffectQueue::new(),
            formed: Vec::new(),
            in_flight: Vec::new(),
            ops: HashMap::new(),
            lanes: HashMap::new(),
            applied_keys: HashMap::new(),
            applied_ops: HashMap::new(),
            key_owner: HashMap::new(),
            floor_429: 0,
            floor_quota: 0,
            op_floor: HashMap::new(),
            op_backoff: HashMap::new(),
            engine_blocked: 0,
            status_model: status::StatusModel::default(),
        }
    }

    fn live_ids(&self) -> Vec<OpId> {
        let mut ids: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(_, m)| !m.acked && !m.discarded)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    fn in_flight_ids(&self) -> HashSet<OpId> {
        self.formed
            .iter()
            .flat_map(|b| b.ops.iter().map(|o| o.id))
            .collect()
    }

    // ---- effects -------------------------------------------------------------------------------

    fn apply(&mut self, fx: Vec<Effect>) {
        for effect in &fx {
            match effect {
                Effect::Persist(record) => self.note_key(record),
                Effect::Send(batch) => self.check_formed(batch.clone()),
                Effect::ScheduleWake(at) => {
                    assert!(*at > self.now, "a wake-up that is already due")
                }
                Effect::Emit(event) => self.on_event(event.clone()),
                _ => {}
            }
        }
        let accepted = self.queue.accept(fx);
        for effect in accepted.now {
            if let Effect::Send(batch) = effect {
                self.release(batch);
            }
        }
        self.check_mirrors();
    }

    /// The op a written key belongs to: never another op's.
    fn note_key(&mut self, record: &OpRecord) {
        let owner = *self
            .key_owner
            .entry(record.idempotency_key)
            .or_insert(record.id);
        assert_eq!(
            owner, record.id,
            "an idempotency key was reused by another op"
        );
    }

    /// The next write group commits (its writes reach the store, its sends leave, its enqueues are
    /// confirmed), or fails (its enqueues are rejected and abandoned; the rest waits for a retry).
    fn commit(&mut self, fail: bool) {
        let Some(group) = self.queue.begin_commit() else {
            return;
        };
        if fail {
            let rejected = self.queue.commit_failed(group);
            for id in &rejected {
                let m = self.ops.remove(id).expect("a rejected op is known");
                assert!(!m.stored);
                self.lanes.get_mut(&m.lane).unwrap().retain(|o| o != id);
            }
            let fx = self.engine.abandon_unstored(&rejected, self.now);
            self.apply(fx);
            return;
        }
        self.store.commit(&group.writes);
        let done = self.queue.commit_succeeded(group.id);
        for batch in done.sends {
            self.release(batch);
        }
        for id in &done.stored {
            self.ops.get_mut(id).expect("a stored op is known").stored = true;
        }
        let fx = self.engine.confirm_stored(&done.stored, self.now);
        self.apply(fx);
    }

    /// Commits every group that waits.
    fn flush(&mut self) {
        while !self.queue.is_idle() {
            self.commit(false);
        }
    }

    /// The queue lets a send go: what it carries must be durable.
    fn release(&mut self, batch: Batch) {
        for op in &batch.ops {
            // Read as a restore reads it: through the mark of a batch of several ops.
            let stored = self.store.read(&op.id).expect("a sent op is stored");
            assert_eq!(
                stored.state,
                OpState::Inflight,
                "sent before its in-flight mark was stored"
            );
            assert_eq!(
                stored.idempotency_key, op.idempotency_key,
                "sent a key that is not stored"
            );
        }
        self.in_flight.push(batch);
    }

    /// An explicit retry from the app ends every wait a server asked for (`Engine::retry`).
    fn lift_server_waits(&mut self) {
        self.floor_429 = 0;
        self.floor_quota = 0;
        self.engine_blocked = 0;
        self.op_floor.clear();
    }

    /// The engine formed a batch (the queue may still hold it).
    fn check_formed(&mut self, batch: Batch) {
        assert!(self.online && !self.paused, "sent while offline or paused");
        assert!(!batch.ops.is_empty());
        assert!(batch.ops.len() <= self.cfg.max_ops);
        assert!(
            self.formed.len() < self.cfg.max_in_flight,
            "concurrency limit"
        );
        let now = self.now;
        assert!(
            now >= self.floor_429,
            "sent at {now} before a 429's Retry-After {}",
            self.floor_429
        );
        assert!(now >= self.floor_quota, "sent before the quota reset");
        assert!(
            now >= self.engine_blocked,
            "sent while the engine said it was blocked"
        );
        let busy = self.in_flight_ids();
        let mut lanes_in_batch = HashSet::new();
        for op in &batch.ops {
            let m = self.ops.get(&op.id).expect("only committed ops are sent");
            assert!(m.stored, "sent before its enqueue was stored");
            assert!(!m.acked && !m.discarded, "sent an acked or discarded op");
            assert!(!busy.contains(&op.id), "op sent twice at once");
            assert!(
                lanes_in_batch.insert(m.lane),
                "two ops of one lane in a batch"
            );
            let lane = &self.lanes[&m.lane];
            for prior in lane.iter().take_while(|p| **p != op.id) {
                let p = &self.ops[prior];
                assert!(
                    p.acked || p.discarded,
                    "sent {} before an earlier op of its lane",
                    op.id
                );
                assert!(!busy.contains(prior));
            }
            assert!(
                now >= self.op_floor.get(&op.id).copied().unwrap_or(0),
                "sent before the op's Retry-After"
            );
            assert!(
                now >= self.op_backoff.get(&op.id).copied().unwrap_or(0),
                "sent before next_attempt_at"
            );
            assert_eq!(self.key_owner.get(&op.idempotency_key), Some(&op.id));
        }
        self.formed.push(batch);
    }

    fn on_event(&mut self, event: Event) {
        self.status_model.on_event(&event);
        match event {
            Event::Acked { id, .. } => {
                let m = self.ops.get_mut(&id).expect("acked a known op");
                assert!(!m.acked, "acked twice");
                assert!(
                    self.applied_ops.contains_key(&id),
                    "acked an op the server never applied"
                );
                m.acked = true;
            }
            Event::RetryScheduled { id, at, .. } => {
                self.op_backoff.insert(id, at);
            }
            Event::Blocked { until } => self.engine_blocked = self.engine_blocked.max(until),
            _ => {}
        }
    }

    /// When nothing waits to commit, the store holds exactly the engine's ops; the counters always
    /// match the model.
    fn check_mirrors(&self) {
        let engine_ids: HashSet<OpId> = self.engine.ops().map(|r| r.id).collect();
        if self.queue.is_idle() {
            assert_eq!(engine_ids, self.store.ids(), "store and engine disagree");
        }
        let live: HashSet<OpId> = self.live_ids().into_iter().collect();
        assert_eq!(engine_ids, live, "engine and model disagree on live ops");
        let s = self.engine.status();
        assert_eq!(s.pending + s.in_flight + s.failed + s.conflicts, live.len());
        assert_eq!(s.in_flight, self.in_flight_ids().len());
        self.check_status();
    }

    // ---- commands ------------------------------------------------------------------------------

    fn step(&mut self, action: &Action) {
        match action {
            Action::Enqueue { lane, delete } => {
                let new = NewOp {
                    collection: "todos".into(),
                    key: lane_key(*lane),
                    kind: if *delete { OpKind::Delete } else { OpKind::Put },
                    payload: json!({ "lane": lane }).into(),
                    base_version: None,
                };
                let (id, fx) = self.engine.enqueue(new, self.now).unwrap();
                assert!(
                    !fx.iter().any(|f| matches!(f, Effect::Send(_))),
                    "sent before commit"
                );
                self.ops.insert(
                    id,
                    ModelOp {
                        lane: *lane,
                        ..ModelOp::default()
                    },
                );
                self.lanes.entry(*lane).or_default().push(id);
                for effect in &fx {
                    if let Effect::Persist(record) = effect {
                        self.note_key(record);
                    }
                }
                let accepted = self.queue.accept_enqueue(id, fx);
                assert!(accepted.now.iter().all(|f| !matches!(f, Effect::Send(_))));
                for effect in &accepted.now {
                    if let Effect::Emit(event) = effect {
                        self.status_model.on_event(event);
                    }
                }
                self.check_mirrors();
            }
            Action::Commit { fail } => self.commit(*fail),
            Action::Respond {
                pick,
                outcomes,
                whole,
            } => self.respond(*pick, outcomes, *whole),
            Action::Advance(ms) => {
                self.now += u64::from(*ms);
                let fx = self.engine.tick(self.now);
                self.apply(fx);
            }
            Action::Crash { applied } => self.crash(*applied),
            Action::Retry(pick) => {
                let live = self.live_ids();
                if live.is_empty() {
                    return;
                }
                let id = live[pick % live.len()];
                match self.engine.retry(id, self.now) {
                    Ok(fx) => {
                        // The app's explicit retry lifts the server's waits too.
                        self.lift_server_waits();
                        self.op_backoff.remove(&id);
                        self.apply(fx);
                    }
                    Err(e) => {
                        assert_eq!(e, outbox_core::CoreError::InFlight(id));
                        assert!(self.in_flight_ids().contains(&id));
                    }
                }
            }
            Action::RetryAll => {
                self.lift_server_waits();
                self.op_backoff.clear();
                let fx = self.engine.retry_all(self.now);
                self.apply(fx);
            }
            Action::Discard(pick) => {
                let live = self.live_ids();
                if live.is_empty() {
                    return;
                }
                let id = live[pick % live.len()];
                match self.engine.discard(id, self.now) {
                    Ok(fx) => {
                        self.ops.get_mut(&id).unwrap().discarded = true;
                        self.apply(fx);
                    }
                    Err(e) => {
                        assert_eq!(e, outbox_core::CoreError::InFlight(id));
                        assert!(self.in_flight_ids().contains(&id));
                    }
                }
            }
            Action::SetOnline(online) => {
                if *online && !self.online {
                    self.op_backoff.clear();
                }
                self.online = *online;
                let fx = self.engine.set_online(*online, self.now);
                self.apply(fx);
            }
            Action::Pause(paused) => {
                self.paused = *paused;
                let fx = if *paused {
                    self.engine.pause(self.now)
                } else {
                    self.engine.resume(self.now)
                };
                self.apply(fx);
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("OUTBOX_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_keeps_the_invariants(
        cfg in config(),
        seed in any::<u64>(),
        actions in prop::collection::vec(action(), 1..80),
    ) {
        let mut sim = Sim::new(cfg, seed);
        for action in &actions {
            sim.step(action);
        }
        sim.finish();
    }
}
