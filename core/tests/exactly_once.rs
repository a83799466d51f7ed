//! One scenario per way the exactly-once promise used to break, each written to fail on the engine
//! before its fix: requests that carried state not yet durable, resends past the server's memory, a
//! replayed ack regressing the confirmed document, an abandoned enqueue coming back, bodies that changed
//! under one key, storage failures, and keys with too little randomness. Preconditions and pacing have
//! their own files. The randomized proof over every crash point is the simulator (`sim/`).

mod support;

use outbox_core::{
    ConflictStrategy, Effect, EffectQueue, Engine, Entropy, Event, OpRecord, OpResult, OpState,
    Randomness, Reply, Response, StorageError, SyncState,
};
use serde_json::json;
use support::*;

/// Every `Send` must come after a `Persist` of each of its ops carrying exactly what the request
/// carries, marked in flight: by the barrier rule that record is durable before the request leaves.
fn assert_sends_follow_their_marks(fx: &[Effect]) {
    for (i, effect) in fx.iter().enumerate() {
        let Effect::Send(batch) = effect else {
            continue;
        };
        for op in &batch.ops {
            let mark = persisted(&fx[..i], op.id)
                .unwrap_or_else(|| panic!("op {} is sent with no in-flight mark before it", op.id));
            assert_eq!(mark.state, OpState::Inflight);
            assert_eq!(
                mark.idempotency_key, op.idempotency_key,
                "the key sent is the key stored"
            );
            assert_eq!(mark.base_version, op.base_version);
            assert_eq!(mark.create_only, op.create_only);
            assert!(
                mark.horizon.is_some(),
                "the mark says when the server may forget the key"
            );
        }
    }
}

// ---- 1. no request carries state that is not yet durable ------------------------------------------

#[test]
fn a_retried_op_carries_its_new_key_only_after_the_key_is_stored() {
    let mut e = Engine::new(config(ConflictStrategy::Manual, false), 1).unwrap();
    let (id, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    assert_sends_follow_their_marks(&fx);
    reply(&mut e, &only_send(&fx), Response::status(422), 1);
    assert_eq!(e.op(id).unwrap().state, OpState::Failed);
    let old_key = e.op(id).unwrap().idempotency_key;
    let fx = e.retry(id, 2).unwrap();
    let batch = only_send(&fx);
    assert_ne!(
        batch.ops[0].idempotency_key, old_key,
        "a definitive refusal rotates the key"
    );
    assert_sends_follow_their_marks(&fx);

    // Through the queue a runtime uses, the send is held until that write has committed.
    let mut queue = EffectQueue::new();
    let accepted = queue.accept(fx);
    assert!(
        sends(&accepted.now).is_empty(),
        "the request waits for the commit"
    );
    let group = queue.begin_commit().unwrap();
    let committed = queue.commit_succeeded(group.id);
    assert_eq!(committed.sends.len(), 1);
}

#[test]
fn a_client_wins_rebase_and_a_resolution_are_stored_before_they_are_sent() {
    let mut e = Engine::new(config(ConflictStrategy::ClientWins, true), 2).unwrap();
    let (_, fx) = enqueue(&mut e, put("a", json!({"mine": 1})), 0);
    let fx = reply(
        &mut e,
        &only_send(&fx),
        conflict_412(4, Some(json!({"theirs": 1}))),
        1,
    );
    let batch = only_send(&fx);
    assert_eq!(batch.ops[0].base_version.as_deref(), Some("\"4\""));
    assert_sends_follow_their_marks(&fx);

    let mut e = Engine::new(config(ConflictStrategy::Manual, true), 3).unwrap();
    let (id, fx) = enqueue(&mut e, put("a", json!({"mine": 1})), 0);
    reply(
        &mut e,
        &only_send(&fx),
        conflict_412(4, Some(json!({"theirs": 1}))),
        1,
    );
    let fx = e.resolve(id, json!({"merged": 1}).into(), None, 2).unwrap();
    let batch = only_send(&fx);
    assert_eq!(batch.ops[0].base_version.as_deref(), Some("\"4\""));
    assert_sends_follow_their_marks(&fx);
}

// ---- 2. never resent past the server's memory -----------------------------------------------------

#[test]
fn a_lost_ack_then_a_long_offline_spell_makes_the_op_unknown_not_resent() {
    let mut e = Engine::new(config(ConflictStrategy::ServerWins, false), 4).unwrap();
    let (id, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    let batch = only_send(&fx);
    e.set_online(false, 10);
    e.on_network_error(batch.id, 10).unwrap();
    // Two days later the network is back; the server (24 h retention) has forgotten the key.
    let fx = e.set_online(true, 48 * HOUR);
    assert!(sends(&fx).is_empty(), "resending could apply it twice");
    assert_eq!(e.op(id).unwrap().state, OpState::Unknown);
    assert!(fx
        .iter()
        .any(|f| matches!(f, Effect::Emit(Event::Unknown { id: u, .. }) if *u == id)));
    let status = e.status();
    assert_eq!((status.unknown, status.state), (1, SyncState::Error));
    // The app decides: it keeps the op out of retry-all, and a deliberate retry is a new request.
    assert!(sends(&e.retry_all(48 * HOUR + 1)).is_empty());
    let key = e.op(id).unwrap().idempotency_key;
    let fx = e.retry(id, 48 * HOUR + 2).unwrap();
    assert_ne!(only_send(&fx).ops[0].idempotency_key, key);
}

#[test]
fn the_horizon_survives_a_reload_and_follows_a_shorter_stated_retention() {
    let mut e = Engine::new(config(ConflictStrategy::ServerWins, false), 5).unwrap();
    let (id, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    let mark = persisted(&fx, id).unwrap();
    // The server states 1 h; the answer to another op teaches it.
    let (_, fx2) = enqueue(&mut e, put("b", json!(2)), 1);
    let fx = reply(
        &mut e,
        &only_send(&fx2),
        Response::status(200).with_header("Idempotency-Retention", "3600"),
        2,
    );
    let moved = persisted(&fx, id).expect("the horizon of the key already sent is stored again");
    assert!(moved.horizon.unwrap() < mark.horizon.unwrap());
    assert!(moved.horizon.unwrap() <= HOUR);
    // The tab dies with the first op in flight; 2 h later it reopens.
    let restored = Engine::restore(
        config(ConflictStrategy::ServerWins, false),
        6,
        vec![moved],
        2 * HOUR,
    );
    let mut restored = restored.unwrap();
    let fx = restored.drain(2 * HOUR);
    assert!(sends(&fx).is_empty());
    assert_eq!(restored.op(id).unwrap().state, OpState::Unknown);
}

#[test]
fn past_the_horizon_a_conditional_op_is_resent_and_a_412_means_unknown_not_dropped() {
    for strategy in [ConflictStrategy::ServerWins, ConflictStrategy::ClientWins] {
        let mut e = Engine::new(config(strategy, true), 7).unwrap();
        e.ingest(
            vec![outbox_core::ConfirmedDoc {
                collection: "todos".into(),
                key: "a".into(),
                version: Some("\"1\"".into()),
                doc: json!({"v": 1}).into(),
                deleted: false,
                acks: Vec::new(),
            }],
            0,
        );
        let (id, fx) = enqueue(&mut e, put("a", json!({"v": 2})), 0);
        let batch = only_send(&fx);
        e.on_network_error(batch.id, 1).unwrap();
        // The key is forgotten; If-Match "1" still rules a second application out, so it goes again.
        let fx = e.tick(30 * HOUR);
        let batch = only_send(&fx);
        assert_eq!(batch.ops[0].base_version.as_deref(), Some("\"1\""));
        // 412 against version 2, which may be our own write: neither dropped nor rebased.
        let fx = reply(
            &mut e,
            &batch,
            conflict_412(2, Some(json!({"v": 2}))),
            30 * HOUR + 1,
        );
        assert!(sends(&fx).is_empty(), "{strategy:?}: not rebased");
        let record = e.op(id).expect("not dropped");
        assert_eq!(record.state, OpState::Unknown, "{strategy:?}");
        assert_eq!(record.server_doc, Some(json!({"v": 2})));
    }
}

// ---- 3. a replayed ack never regresses the confirmed document -------------------------------------

#[test]
fn a_replayed_ack_older_than_a_pull_does_not_put_the_old_document_back() {
    let mut e = Engine::new(config(ConflictStrategy::Manual, false), 8).unwrap();
    let (_, fx) = enqueue(&mut e, put("a", json!({"step": 1})), 0);
    let batch = only_send(&fx);
    e.on_network_error(batch.id, 1).unwrap();
    // A pull brings version 3 (someone else wrote after our version 2).
    e.ingest(
        vec![outbox_core::ConfirmedDoc {
            collection: "todos".into(),
            key: "a".into(),
            version: Some("\"3\"".into()),
            doc: json!({"step": 3}).into(),
            deleted: false,
            acks: Vec::new(),
        }],
        2,
    );
    let fx = e.tick(10_000);
    let batch = only_send(&fx);
    let replay = Response::status(200)
        .with_header("ETag", "\"2\"")
        .with_header("Idempotent-Replayed", "true")
        .with_body(json!({"step": 1}));
    let fx = reply(&mut e, &batch, replay, 10_001);
    assert!(
        !fx.iter().any(|f| matches!(f, Effect::PersistDoc(_))),
        "the stale document is not stored"
    );
    let confirmed = e.confirmed("todos", "a").unwrap();
    assert_eq!(confirmed.version.as_deref(), Some("\"3\""));
    assert_eq!(confirmed.doc.value(), json!({"step": 3}));
}

// ---- 6. an abandoned enqueue never comes back ------------------------------------------------------

#[test]
fn an_enqueue_whose_commit_failed_is_deleted_after_anything_that_rewrote_it() {
    let mut e = Engine::new(config(ConflictStrategy::ServerWins, true), 15).unwrap();
    let mut queue = EffectQueue::new();
    let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    queue.accept(fx);
    let group = queue.begin_commit().unwrap();
    let batch = queue.commit_succeeded(group.id).sends.remove(0);
    // B is enqueued behind A; its commit is still to come when A's ack rewrites B's precondition.
    let (b, fx) = e.enqueue(put("a", json!(2)), 1).unwrap();
    queue.accept_enqueue(b, fx);
    let group = queue.begin_commit().unwrap();
    let fx = reply(
        &mut e,
        &batch,
        Response::status(201).with_header("ETag", "\"1\""),
        2,
    );
    assert!(persisted(&fx, b).is_some(), "the ack rewrites B");
    queue.accept(fx);
    // B's own commit fails: the app is told, and B must not come back through the later write.
    let rejected = queue.commit_failed(group);
    assert_eq!(rejected, vec![b]);
    let fx = e.abandon_unstored(&rejected, 3);
    assert!(fx.contains(&Effect::Delete(b)));
    queue.accept(fx);
    let retry = queue.begin_commit().unwrap();
    let last_b = retry.writes.iter().rev().find(|w| match w {
        outbox_core::Write::PutOp(r) => r.id == b,
        outbox_core::Write::DeleteOp(id) => *id == b,
        _ => false,
    });
    assert_eq!(last_b, Some(&outbox_core::Write::DeleteOp(b)));
}

// ---- 7. the body of a key is byte-identical on every attempt, across reloads ----------------------

#[test]
fn doubles_survive_the_store_so_the_resent_body_is_the_first_body() {
    let mut rng = fastrand::Rng::with_seed(16);
    let mut e = Engine::new(config(ConflictStrategy::Manual, false), 17).unwrap();
    for i in 0..2_000 {
        let x = f64::from_bits(rng.u64(..));
        let x = if x.is_finite() { x } else { rng.f64() * 1e6 };
        let y = rng.f64() * 10f64.powi(rng.i32(-20..20));
        let payload = json!({ "x": x, "y": y, "i": i });
        let (id, fx) = enqueue(&mut e, put(&i.to_string(), payload), 0);
        let first = serde_json::to_string(&only_send(&fx).ops[0].payload).unwrap();
        // What a reload reads back is what IndexedDB holds: the record's JSON text.
        let text = serde_json::to_string(&persisted(&fx, id).unwrap()).unwrap();
        let stored: OpRecord = serde_json::from_str(&text).unwrap();
        let again = serde_json::to_string(&stored.payload).unwrap();
        assert_eq!(first, again, "the body under one key changed");
        e.on_reply(
            only_send(&fx).id,
            &Reply::per_op(vec![OpResult {
                id,
                response: Response::status(200),
            }]),
            1,
            WALL,
        )
        .unwrap();
    }
}

// ---- 10. failing storage stops sending -------------------------------------------------------------

#[test]
fn nothing_is_sent_while_storage_fails_and_the_status_says_so() {
    let mut e = Engine::new(config(ConflictStrategy::Manual, false), 22).unwrap();
    let (a, _) = e.enqueue(put("a", json!(1)), 0).unwrap();
    let fx = e.storage_failed(
        StorageError {
            code: "STORAGE".into(),
            message: "the disk is gone".into(),
        },
        1,
    );
    assert!(sends(&fx).is_empty());
    let fx = e.confirm_stored(&[a], 2);
    assert!(sends(&fx).is_empty(), "not while storage fails");
    let status = e.status();
    assert_eq!(status.state, SyncState::Stalled);
    assert_eq!(status.storage_error.unwrap().code, "STORAGE");
    let fx = e.storage_recovered(3);
    assert_eq!(only_send(&fx).ops[0].id, a);
    assert_eq!(e.status().state, SyncState::Syncing);
}

// ---- 11. keys carry the runtime's randomness --------------------------------------------------------

struct Counting(u8);

impl Entropy for Counting {
    fn fill(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
    }
}

#[test]
fn ids_and_keys_are_the_sources_bytes_not_a_seeded_stream() {
    let mut e = Engine::new(
        config(ConflictStrategy::Manual, false),
        Randomness::Source(Box::new(Counting(0))),
    )
    .unwrap();
    let (id, fx) = e.enqueue(put("a", json!(1)), 0).unwrap();
    let key = persisted(&fx, id).unwrap().idempotency_key;
    // 8 bytes seeded the jitter; then the id's 16 bytes, then the key's, as UUID v4.
    let expect = |start: u8| {
        let mut b: [u8; 16] = std::array::from_fn(|i| start + i as u8);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        uuid::Uuid::from_bytes(b)
    };
    assert_eq!(id.0, expect(8));
    assert_eq!(key, expect(24));
    assert_eq!(key.get_version_num(), 4);
}

// ---- found by the simulator -------------------------------------------------------------------------

#[test]
fn a_create_is_no_guard_past_the_horizon_the_document_may_have_been_deleted_since() {
    let mut e = Engine::new(config(ConflictStrategy::ServerWins, true), 23).unwrap();
    let (id, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    let batch = only_send(&fx);
    assert!(batch.ops[0].create_only);
    e.on_network_error(batch.id, 1).unwrap();
    // If it was applied and someone deleted the document since, If-None-Match: * matches again.
    let fx = e.tick(30 * HOUR);
    assert!(sends(&fx).is_empty());
    assert_eq!(e.op(id).unwrap().state, OpState::Unknown);
}
