//! Scenario tests for the engine, one behaviour each, and the helpers the other scenario files share
//! (pacing, restore, marks, view: `*_tests.rs` beside this one). The randomized invariants live in
//! `tests/state_machine.rs`.

use serde_json::json;

use super::*;
use crate::op::OpKind;
use crate::outcome::KEY_IN_FLIGHT_PROBLEM_TYPE;
use crate::response::OpResult;
use crate::retry::RetryPolicy;

pub(super) const WALL: u64 = 1_700_000_000_000;

pub(super) fn config() -> Config {
    Config {
        max_ops: 10,
        max_bytes: 1_000_000,
        max_in_flight: 4,
        retry: RetryPolicy {
            base_ms: 1_000,
            cap_ms: 8_000,
            max_attempts: None,
            max_age_ms: None,
            ..RetryPolicy::default()
        },
        // These scenarios are about delivery: conflicts are held and ops sent unconditionally. The
        // strategies and automatic base versions have their own tests (view_tests.rs).
        default_collection: crate::CollectionConfig {
            conflict: crate::ConflictStrategy::Manual,
            versioned: false,
        },
        ..Config::default()
    }
}

fn op(collection: &str, key: &str, kind: OpKind) -> NewOp {
    NewOp {
        collection: collection.into(),
        key: key.into(),
        kind,
        payload: json!({ "k": key }).into(),
        base_version: None,
    }
}

pub(super) fn put(key: &str) -> NewOp {
    op("todos", key, OpKind::Put)
}

/// Enqueues and confirms the commit at once; returns the id and the confirm effects.
pub(super) fn add(e: &mut Engine, new: NewOp, now: u64) -> (OpId, Vec<Effect>) {
    let (id, _) = e.enqueue(new, now).unwrap();
    (id, e.confirm_stored(&[id], now))
}

pub(super) fn sends(fx: &[Effect]) -> Vec<Batch> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::Send(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn sent_ids(fx: &[Effect]) -> Vec<OpId> {
    sends(fx)
        .into_iter()
        .flat_map(|b| b.ops.into_iter().map(|o| o.id))
        .collect()
}

pub(super) fn events(fx: &[Effect]) -> Vec<Event> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::Emit(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn only_batch(fx: &[Effect]) -> Batch {
    let b = sends(fx);
    assert_eq!(b.len(), 1, "expected exactly one batch in {fx:?}");
    b.into_iter().next().unwrap()
}

pub(super) fn reply(e: &mut Engine, batch: &Batch, response: Response, now: u64) -> Vec<Effect> {
    e.on_reply(batch.id, &Reply::whole(response), now, WALL)
        .unwrap()
}

#[test]
fn an_op_is_not_sent_before_its_commit_is_confirmed() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (id, fx) = e.enqueue(put("a"), 0).unwrap();
    assert!(matches!(&fx[0], Effect::Persist(r) if r.id == id && r.state == OpState::Pending));
    assert!(sends(&fx).is_empty());
    assert!(sends(&e.drain(5)).is_empty());
    assert_eq!(sent_ids(&e.confirm_stored(&[id], 6)), vec![id]);
}

#[test]
fn a_failed_commit_is_rolled_back_by_discard_and_never_sent() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (id, _) = e.enqueue(put("a"), 0).unwrap();
    let fx = e.discard(id, 1).unwrap();
    assert!(fx.contains(&Effect::Delete(id)));
    assert!(sends(&e.confirm_stored(&[id], 2)).is_empty());
    assert_eq!(e.status().pending, 0);
}

#[test]
fn one_op_in_flight_per_lane_in_enqueue_order() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a1, fx) = add(&mut e, put("a"), 0);
    let (a2, fx2) = add(&mut e, put("a"), 0);
    let (b1, fx3) = add(&mut e, put("b"), 0);
    assert_eq!(sent_ids(&fx), vec![a1]);
    assert!(sends(&fx2).is_empty(), "a2 waits behind a1");
    assert_eq!(sent_ids(&fx3), vec![b1], "another lane goes at once");
    let fx = reply(&mut e, &only_batch(&fx), Response::status(200), 1);
    assert_eq!(sent_ids(&fx), vec![a2]);
}

#[test]
fn batches_respect_max_ops_max_bytes_and_the_concurrency_limit() {
    let cfg = Config {
        max_ops: 3,
        max_in_flight: 2,
        ..config()
    };
    let mut e = Engine::new(cfg, 1).unwrap();
    let ids: Vec<OpId> = (0..10)
        .map(|i| e.enqueue(put(&i.to_string()), 0).unwrap().0)
        .collect();
    let fx = e.confirm_stored(&ids, 0);
    let batches = sends(&fx);
    assert_eq!(batches.len(), 2, "global limit of two batches in flight");
    assert_eq!(batches[0].ops.len(), 3);
    let order: Vec<OpId> = batches
        .iter()
        .flat_map(|b| b.ops.iter().map(|o| o.id))
        .collect();
    assert_eq!(order, ids[..6].to_vec(), "oldest first");

    // max_bytes: each op is ~140 bytes, so 300 bytes fit two; an op bigger than the limit goes alone.
    let cfg = Config {
        max_bytes: 300,
        ..config()
    };
    let mut e = Engine::new(cfg, 1).unwrap();
    let mut big = put("big");
    big.payload = json!({ "blob": "x".repeat(1_000) }).into();
    let ids: Vec<OpId> = [put("1"), put("2"), put("3"), big]
        .into_iter()
        .map(|o| e.enqueue(o, 0).unwrap().0)
        .collect();
    let sizes: Vec<usize> = sends(&e.confirm_stored(&ids, 0))
        .iter()
        .map(|b| b.ops.len())
        .collect();
    assert_eq!(sizes, vec![2, 1, 1]);
}

#[test]
fn a_permanent_failure_halts_only_its_lane_until_retried_with_a_fresh_key() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a1, fx) = add(&mut e, put("a"), 0);
    let (a2, _) = add(&mut e, put("a"), 0);
    let batch = only_batch(&fx);
    let old_key = batch.ops[0].idempotency_key;
    let problem = json!({ "type": "https://example.com/invalid", "title": "Invalid", "detail": "title too long" });
    let fx = reply(&mut e, &batch, Response::status(422).with_body(problem), 1);
    assert!(events(&fx)
        .iter()
        .any(|ev| matches!(ev, Event::Failed { id, error, .. }
        if *id == a1 && error.status == Some(422) && error.message == "title too long")));
    assert!(sends(&fx).is_empty(), "a2 is held behind the failed a1");
    assert_eq!(e.op(a1).unwrap().state, OpState::Failed);

    let (b1, fx) = add(&mut e, put("b"), 2);
    assert_eq!(
        sent_ids(&fx),
        vec![b1],
        "the failed lane does not block another"
    );
    assert_eq!(e.status().failed, 1);

    let fx = e.retry(a1, 3).unwrap();
    let again = only_batch(&fx);
    assert_eq!(again.ops[0].id, a1);
    assert_ne!(
        again.ops[0].idempotency_key, old_key,
        "a definitive refusal rotates the key"
    );
    assert_eq!(again.ops[0].attempt, 2, "attempts go on counting");
    assert_eq!(
        e.op(a1).unwrap().charged_attempts(),
        1,
        "a manual retry gets a fresh budget"
    );
    let fx = reply(&mut e, &again, Response::status(200), 4);
    assert_eq!(sent_ids(&fx), vec![a2]);
}

#[test]
fn discarding_a_failed_head_releases_its_lane() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a1, fx) = add(&mut e, put("a"), 0);
    let (a2, _) = add(&mut e, put("a"), 0);
    reply(&mut e, &only_batch(&fx), Response::status(400), 1);
    assert_eq!(
        e.discard(a2, 1).ok().map(|fx| sends(&fx).len()),
        Some(0),
        "discard behind the head"
    );
    let (a3, _) = add(&mut e, put("a"), 2);
    let fx = e.discard(a1, 3).unwrap();
    assert!(events(&fx).contains(&Event::Discarded {
        id: a1,
        collection: "todos".into(),
        key: "a".into(),
    }));
    assert_eq!(sent_ids(&fx), vec![a3]);
    assert_eq!(e.discard(a3, 4), Err(CoreError::InFlight(a3)));
    assert_eq!(e.discard(a1, 4), Err(CoreError::UnknownOp(a1)));
}

#[test]
fn a_conflict_holds_the_server_doc_and_keeps_the_key_after_a_lost_response() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a1, fx) = add(&mut e, put("a"), 0);
    let b = only_batch(&fx);
    let key = b.ops[0].idempotency_key;
    // The first attempt's response is lost: the server may have applied it.
    let fx = e.on_network_error(b.id, 1).unwrap();
    assert!(e.op(a1).unwrap().maybe_applied);
    let fx = e.tick(next_attempt(&fx, a1));
    let b = only_batch(&fx);
    assert_eq!(b.ops[0].idempotency_key, key, "a retry reuses the key");
    let doc = json!({ "title": "Version mismatch", "current": { "v": 7 } });
    let fx = reply(
        &mut e,
        &b,
        Response::status(412).with_body(doc.clone()),
        20_000,
    );
    assert!(events(&fx)
        .iter()
        .any(|ev| matches!(ev, Event::Conflict { id, server_doc, .. }
        if *id == a1 && server_doc.as_ref() == Some(&doc))));
    assert_eq!(e.op(a1).unwrap().server_doc.as_ref(), Some(&doc));
    assert_eq!(e.status().conflicts, 1);
    assert_eq!(e.status().state, SyncState::Error);
    // A plain retry after a lost response keeps the key: the first attempt may have been applied.
    let b = only_batch(&e.retry(a1, 20_001).unwrap());
    assert_eq!(
        b.ops[0].idempotency_key, key,
        "maybe applied: the key must not change"
    );
    reply(
        &mut e,
        &b,
        Response::status(412).with_body(doc.clone()),
        20_002,
    );
    // A resolution is a new write against the server's version: it gets a new key.
    let fx = e
        .resolve(
            a1,
            json!({ "rebased": true }).into(),
            Some("7".into()),
            20_003,
        )
        .unwrap();
    let b = only_batch(&fx);
    assert_ne!(b.ops[0].idempotency_key, key, "a resolution is a new write");
    assert_eq!(b.ops[0].base_version.as_deref(), Some("7"));
    assert_eq!(b.ops[0].payload.value(), json!({ "rebased": true }));
}

pub(super) fn next_attempt(fx: &[Effect], id: OpId) -> u64 {
    events(fx)
        .iter()
        .find_map(|ev| match ev {
            Event::RetryScheduled { id: i, at, .. } if *i == id => Some(*at),
            _ => None,
        })
        .expect("a retry was scheduled")
}

#[test]
fn transient_failures_back_off_with_jitter_and_are_not_sent_early() {
    let mut e = Engine::new(config(), 9).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let mut fx = reply(&mut e, &only_batch(&fx), Response::status(503), 100);
    let mut windows = Vec::new();
    for attempt in 1..=5u32 {
        let at = next_attempt(&fx, a);
        let now = e.now;
        assert!(at >= now && at <= now + config().retry.window_ms(attempt));
        windows.push(at - now);
        assert_eq!(e.status().next_attempt_at, Some(at).filter(|t| *t > now));
        if at > now {
            assert!(
                sends(&e.tick(at - 1)).is_empty(),
                "not before next_attempt_at"
            );
            assert!(fx.contains(&Effect::ScheduleWake(at)));
        }
        let b = only_batch(&e.tick(at));
        assert_eq!(b.ops[0].attempt, attempt + 1);
        fx = reply(&mut e, &b, Response::status(500), at + 10);
    }
    assert_eq!(e.op(a).unwrap().state, OpState::Backoff);
}

#[test]
fn max_attempts_dead_letters_a_transient_op() {
    let cfg = Config {
        retry: RetryPolicy {
            max_attempts: Some(2),
            ..config().retry
        },
        ..config()
    };
    let mut e = Engine::new(cfg, 3).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let fx = e.on_network_error(only_batch(&fx).id, 1).unwrap();
    let fx = e.tick(next_attempt(&fx, a));
    let fx = e.on_network_error(only_batch(&fx).id, 50_000).unwrap();
    assert!(events(&fx)
        .iter()
        .any(|ev| matches!(ev, Event::Failed { id, error, .. }
        if *id == a && error.message.starts_with("gave up after 2 attempts"))));
}

#[test]
fn a_401_refreshes_auth_and_retries_once_at_once_then_backs_off() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let b = only_batch(&fx);
    assert!(!b.refresh_auth);
    let fx = reply(&mut e, &b, Response::status(401), 10);
    let b = only_batch(&fx);
    assert!(b.refresh_auth, "the runtime must fetch fresh credentials");
    assert_eq!(b.ops[0].id, a);
    let fx = reply(&mut e, &b, Response::status(401), 20);
    let at = next_attempt(&fx, a);
    assert!(at > 20 && sends(&fx).is_empty(), "the second 401 backs off");
    assert_eq!(e.op(a).unwrap().state, OpState::Backoff);
    assert!(only_batch(&e.tick(at)).refresh_auth);
    assert_eq!(
        e.op(a).unwrap().last_error.as_ref().map(|er| er.class),
        Some(OutcomeClass::Auth)
    );
}

#[test]
fn delete_of_a_missing_doc_is_an_ack() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a, fx) = add(&mut e, op("todos", "a", OpKind::Delete), 0);
    let fx = reply(&mut e, &only_batch(&fx), Response::status(404), 1);
    assert!(fx.contains(&Effect::Delete(a)));
    let (p, fx) = add(&mut e, op("todos", "b", OpKind::Patch), 2);
    let fx = reply(&mut e, &only_batch(&fx), Response::status(404), 3);
    assert!(events(&fx)
        .iter()
        .any(|ev| matches!(ev, Event::Failed { id, .. } if *id == p)));
}

#[test]
fn a_409_key_in_flight_retries_with_the_same_key() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let b = only_batch(&fx);
    let r = Response::status(409).with_body(json!({ "type": KEY_IN_FLIGHT_PROBLEM_TYPE }));
    let fx = reply(&mut e, &b, r, 1);
    assert_eq!(e.op(a).unwrap().state, OpState::Backoff);
    let fx = e.tick(next_attempt(&fx, a));
    assert_eq!(
        only_batch(&fx).ops[0].idempotency_key,
        b.ops[0].idempotency_key
    );
}

#[test]
fn ack_reports_the_version_and_doc_and_drains() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let r = Response::status(200)
        .with_header("ETag", "\"v2\"")
        .with_body(json!({ "title": "milk" }));
    let fx = reply(&mut e, &only_batch(&fx), r, 5);
    let evs = events(&fx);
    assert!(evs.contains(&Event::Acked {
        id: a,
        collection: "todos".into(),
        key: "a".into(),
        version: Some("\"v2\"".into()),
        doc: Some(json!({ "title": "milk" }).into()),
    }));
    assert!(evs.contains(&Event::Drained));
    let st = e.status();
    assert_eq!(
        (st.state, st.last_synced_at, st.pending),
        (SyncState::Idle, Some(5), 0)
    );
}

#[test]
fn per_op_results_are_matched_by_id_and_a_missing_one_counts_as_lost() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a, _) = e.enqueue(put("a"), 0).unwrap();
    let (b, _) = e.enqueue(put("b"), 0).unwrap();
    let (c, _) = e.enqueue(put("c"), 0).unwrap();
    let batch = only_batch(&e.confirm_stored(&[a, b, c], 0));
    let reply = Reply::per_op(vec![
        OpResult {
            id: b,
            response: Response::status(422),
        },
        OpResult {
            id: a,
            response: Response::status(201),
        },
    ]);
    let fx = e.on_reply(batch.id, &reply, 1, WALL).unwrap();
    assert!(fx.contains(&Effect::Delete(a)));
    assert_eq!(e.op(b).unwrap().state, OpState::Failed);
    let c_rec = e.op(c).unwrap();
    assert!(c_rec.maybe_applied && c_rec.state != OpState::Failed);
    assert_eq!(
        e.on_reply(batch.id, &reply, 2, WALL),
        Err(CoreError::UnknownBatch(batch.id))
    );

    // An empty result list is not a whole-batch success: every op counts as lost.
    let batch = only_batch(&e.tick(1_000_000));
    let lost = batch.ops[0].id;
    e.on_reply(batch.id, &Reply::per_op(Vec::new()), 1_000_001, WALL)
        .unwrap();
    assert!(e.op(lost).is_some(), "not acked");
}

#[test]
fn pause_stops_sending_and_resume_restarts_it() {
    let mut e = Engine::new(config(), 1).unwrap();
    let fx = e.pause(0);
    assert!(events(&fx).iter().any(
        |ev| matches!(ev, Event::StatusChanged { status } if status.state == SyncState::Paused)
    ));
    let (a, fx) = add(&mut e, put("a"), 1);
    assert!(sends(&fx).is_empty());
    assert_eq!(sent_ids(&e.resume(2)), vec![a]);
}

#[test]
fn the_same_seed_and_inputs_give_the_same_effects() {
    let run = || {
        let mut e = Engine::new(config(), 77).unwrap();
        let mut all = Vec::new();
        let (_, fx) = add(&mut e, put("a"), 0);
        all.extend(fx.clone());
        all.extend(e.on_network_error(only_batch(&fx).id, 5).unwrap());
        all
    };
    assert_eq!(run(), run());
}

#[test]
fn invalid_input_is_refused() {
    let mut e = Engine::new(config(), 1).unwrap();
    assert_eq!(e.enqueue(put(""), 0).err(), Some(CoreError::InvalidEntity));
    let bad = Config {
        max_ops: 0,
        ..config()
    };
    assert!(matches!(
        Engine::new(bad, 1),
        Err(CoreError::InvalidConfig(_))
    ));
    let unknown = OpId(Uuid::nil());
    assert_eq!(
        e.retry(unknown, 0).err(),
        Some(CoreError::UnknownOp(unknown))
    );
    assert_eq!(
        e.on_network_error(99, 0).err(),
        Some(CoreError::UnknownBatch(99))
    );
}

#[test]
fn ids_and_keys_are_uuid_v4() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (id, fx) = e.enqueue(put("a"), 0).unwrap();
    let Effect::Persist(rec) = &fx[0] else {
        panic!()
    };
    assert_eq!(id.0.get_version_num(), 4);
    assert_eq!(rec.idempotency_key.get_version_num(), 4);
    assert_ne!(id.0, rec.idempotency_key);
}

#[test]
fn the_transports_reason_for_no_answer_becomes_the_ops_error_message() {
    let mut e = Engine::new(config(), 3).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let fx = e
        .on_no_answer(only_batch(&fx).id, Some("timed out after 15000 ms"), 5)
        .unwrap();
    let error = e.op(a).unwrap().last_error.clone().expect("an error");
    assert_eq!(error.message, "timed out after 15000 ms");
    assert_eq!(error.code.as_deref(), Some("network_error"));
    assert_eq!(error.class, OutcomeClass::Transient);
    assert!(events(&fx)
        .iter()
        .any(|ev| matches!(ev, Event::RetryScheduled { id, .. } if *id == a)));
}
