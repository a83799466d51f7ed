//! The status never contradicts itself: one scenario per contradiction a user met (each failed before its
//! fix). The randomized check that the status is exactly what the ops imply, after every step, is
//! `tests/state_machine.rs` (`state_machine/status.rs`).

mod support;

use outbox_core::{
    Config, ConflictStrategy, Engine, OpState, Progress, Response, RetryPolicy, SyncState,
};
use serde_json::json;
use support::*;

fn engine() -> Engine {
    Engine::new(config(ConflictStrategy::Manual, false), 7).unwrap()
}

#[test]
fn a_backoff_with_nothing_in_flight_is_retrying_not_syncing() {
    let mut e = engine();
    let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    assert_eq!(e.status().state, SyncState::Syncing, "in flight");
    reply(&mut e, &only_send(&fx), Response::status(500), 10);
    let status = e.status();
    assert_ne!(status.state, SyncState::Syncing, "nothing is in flight");
    assert_eq!(status.state, SyncState::Retrying);
    let at = status.next_attempt_at.expect("the backoff's end");
    assert_eq!((status.pending, status.in_flight), (1, 0));

    // An op of another entity that can go now makes it syncing again, backoff or not.
    let (_, fx2) = enqueue(&mut e, put("b", json!(2)), 20);
    assert_eq!(e.status().state, SyncState::Syncing);
    reply(&mut e, &only_send(&fx2), Response::status(200), 30);
    assert_eq!(e.status().state, SyncState::Retrying);

    // The backoff ends: the op goes out, and it is syncing.
    assert_eq!(sends(&e.tick(at)).len(), 1);
    assert_eq!(e.status().state, SyncState::Syncing);
}

#[test]
fn ops_waiting_behind_a_failed_op_are_an_error_not_syncing() {
    let mut e = engine();
    let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    enqueue(&mut e, put("a", json!(2)), 0);
    reply(&mut e, &only_send(&fx), Response::status(422), 10);
    let status = e.status();
    assert_eq!((status.pending, status.failed), (1, 1));
    assert_eq!(
        status.state,
        SyncState::Error,
        "nothing can move until the app acts"
    );
    assert_eq!(status.progress, None, "no sync is running");
}

#[test]
fn last_error_is_gone_once_every_op_it_belonged_to_is() {
    let mut e = engine();
    let (a, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    reply(&mut e, &only_send(&fx), Response::status(422), 10);
    assert_eq!(e.status().last_error.and_then(|er| er.status), Some(422));
    e.discard(a, 20).unwrap();
    let status = e.status();
    assert_eq!(status.state, SyncState::Idle);
    assert_eq!(status.last_error, None, "the failed op is gone");
}

#[test]
fn last_error_is_the_newest_error_of_an_op_still_affected() {
    let mut e = engine();
    let (a, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    reply(&mut e, &only_send(&fx), Response::status(422), 10);
    // B fails after A: its error is the newer one.
    let (b, fx) = enqueue(&mut e, put("b", json!(2)), 20);
    let fx = reply(&mut e, &only_send(&fx), Response::status(503), 30);
    assert!(sends(&fx).is_empty());
    assert_eq!(e.status().last_error.and_then(|er| er.status), Some(503));
    // B succeeds: A's failure still stands, and it is what lastError shows (an ack used to clear it).
    let fx = e.retry(b, 40).unwrap();
    reply(&mut e, &only_send(&fx), Response::status(200), 50);
    let status = e.status();
    assert_eq!(status.state, SyncState::Error);
    assert_eq!(status.last_error, e.op(a).unwrap().last_error);
    assert_eq!(status.last_error.and_then(|er| er.status), Some(422));
}

#[test]
fn attempts_count_every_attempt_and_max_attempts_counts_from_the_last_retry() {
    let cfg = Config {
        retry: RetryPolicy {
            base_ms: 1_000,
            cap_ms: 8_000,
            max_attempts: Some(2),
            ..RetryPolicy::default()
        },
        ..config(ConflictStrategy::Manual, false)
    };
    let mut e = Engine::new(cfg, 7).unwrap();
    let (a, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    reply(&mut e, &only_send(&fx), Response::status(500), 10);
    let fx = e.tick(HOUR);
    reply(&mut e, &only_send(&fx), Response::status(500), HOUR + 10);
    assert_eq!(e.op(a).unwrap().state, OpState::Failed, "budget used up");
    assert_eq!(e.op(a).unwrap().attempts, 2);

    // The app retries: a fresh budget, but the count of attempts goes on.
    let fx = e.retry(a, 2 * HOUR).unwrap();
    assert_eq!(only_send(&fx).ops[0].attempt, 3);
    reply(
        &mut e,
        &only_send(&fx),
        Response::status(500),
        2 * HOUR + 10,
    );
    let record = e.op(a).unwrap();
    assert_eq!(
        record.attempts, 3,
        "the retry that failed again counts as an attempt"
    );
    assert_eq!(
        record.state,
        OpState::Backoff,
        "one attempt of the new budget is left"
    );
    assert_eq!(record.charged_attempts(), 1);
    let fx = e.tick(3 * HOUR);
    reply(
        &mut e,
        &only_send(&fx),
        Response::status(500),
        3 * HOUR + 10,
    );
    let record = e.op(a).unwrap();
    assert_eq!((record.state, record.attempts), (OpState::Failed, 4));
}

#[test]
fn a_rate_limit_counts_as_an_attempt_but_not_against_the_budget() {
    let mut e = engine();
    let (a, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    let fx = reply(
        &mut e,
        &only_send(&fx),
        Response::status(429).with_header("Retry-After", "1"),
        10,
    );
    assert!(sends(&fx).is_empty());
    let record = e.op(a).unwrap();
    assert_eq!((record.attempts, record.charged_attempts()), (1, 0));
}

#[test]
fn progress_counts_the_ops_of_the_running_sync() {
    let mut e = engine();
    assert_eq!(e.status().progress, None);
    let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    let (_, fx_b) = enqueue(&mut e, put("b", json!(2)), 0);
    let (_, fx_c) = enqueue(&mut e, put("c", json!(3)), 0);
    let progress = |current, total| Some(Progress { current, total });
    assert_eq!(e.status().progress, progress(0, 3));
    reply(&mut e, &only_send(&fx), Response::status(200), 10);
    assert_eq!(e.status().progress, progress(1, 3));
    // Enqueued during the sync: it joins it.
    let (_, fx_d) = enqueue(&mut e, put("d", json!(4)), 20);
    assert_eq!(e.status().progress, progress(1, 4));
    // A failure settles its op too (it is held for the app from now on).
    reply(&mut e, &only_send(&fx_b), Response::status(422), 30);
    assert_eq!(e.status().progress, progress(2, 4));
    // A backoff does not: the op is still to be settled by this sync.
    reply(&mut e, &only_send(&fx_c), Response::status(500), 40);
    assert_eq!(e.status().progress, progress(2, 4));
    assert_eq!(e.status().state, SyncState::Syncing, "d is in flight");
    reply(&mut e, &only_send(&fx_d), Response::status(200), 50);
    assert_eq!(e.status().progress, progress(3, 4));
    let fx = e.tick(HOUR);
    reply(&mut e, &only_send(&fx), Response::status(200), HOUR + 10);
    // Only the failed op is left: the sync is over.
    let status = e.status();
    assert_eq!((status.progress, status.state), (None, SyncState::Error));

    // The next sync counts from zero.
    enqueue(&mut e, put("e", json!(5)), HOUR + 20);
    assert_eq!(e.status().progress, progress(0, 1));
}

#[test]
fn a_restore_starts_a_new_sync() {
    let mut e = engine();
    let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    enqueue(&mut e, put("b", json!(2)), 0);
    enqueue(&mut e, put("a", json!(3)), 0);
    let fx = reply(&mut e, &only_send(&fx), Response::status(200), 10);
    assert!(!sends(&fx).is_empty(), "the second op of a goes");
    assert_eq!(
        e.status().progress,
        Some(Progress {
            current: 1,
            total: 3
        })
    );
    let records = e.ops().cloned().collect();
    let restored =
        Engine::restore(config(ConflictStrategy::Manual, false), 8, records, HOUR).unwrap();
    assert_eq!(
        restored.status().progress,
        Some(Progress {
            current: 0,
            total: 2
        })
    );
}
