//! Pacing and clocks: a rate limit never makes the client hammer the server, a server's wait is capped,
//! and deadlines or horizons stored before the clock was set back neither freeze the queue nor are
//! trusted.

mod support;

use outbox_core::{ConflictStrategy, Engine, OpState, Response, RetryPolicy};
use serde_json::json;
use support::*;

// ---- 5. a rate limit can never make the client hammer ---------------------------------------------

#[test]
fn retry_after_zero_or_in_the_past_still_waits_and_waits_grow() {
    for retry_after in ["0", "Thu, 01 Jan 2015 00:00:00 GMT", ""] {
        let mut e = Engine::new(config(ConflictStrategy::Manual, false), 13).unwrap();
        let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
        let mut batch = only_send(&fx);
        let mut now = 0;
        let mut last_wait = 0;
        for round in 1..=6u32 {
            let mut response = Response::status(429);
            if !retry_after.is_empty() {
                response = response.with_header("Retry-After", retry_after);
            }
            let fx = reply(&mut e, &batch, response, now);
            assert!(
                sends(&fx).is_empty(),
                "{retry_after:?}: resent in the same call"
            );
            let blocked = e.status().blocked_until.expect("blocked");
            let wait = blocked - now;
            assert!(
                wait >= 500,
                "{retry_after:?}: round {round} waits {wait} ms"
            );
            if round >= 4 {
                assert!(
                    wait > last_wait.min(4_000),
                    "{retry_after:?}: the wait grows ({last_wait} -> {wait})"
                );
            }
            last_wait = wait;
            now = blocked;
            batch = only_send(&e.tick(now));
        }
    }
}

#[test]
fn a_retry_after_of_ten_years_is_capped() {
    let mut e = Engine::new(config(ConflictStrategy::Manual, false), 14).unwrap();
    let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    let fx = reply(
        &mut e,
        &only_send(&fx),
        Response::status(429).with_header("Retry-After", "315360000"),
        0,
    );
    assert!(sends(&fx).is_empty());
    assert!(e.status().blocked_until.unwrap() <= RetryPolicy::default().max_server_wait_ms);
}

#[test]
fn the_apps_retry_lifts_a_servers_wait_and_a_drain_does_not() {
    for retry_all in [false, true] {
        let mut e = Engine::new(config(ConflictStrategy::Manual, false), 15).unwrap();
        let (id, fx) = enqueue(&mut e, put("a", json!(1)), 0);
        let fx = reply(
            &mut e,
            &only_send(&fx),
            Response::status(503).with_header("Retry-After", "315360000"),
            0,
        );
        assert!(sends(&fx).is_empty());
        assert!(sends(&e.drain(1_000)).is_empty(), "drain keeps the wait");
        let fx = if retry_all {
            e.retry_all(2_000)
        } else {
            e.retry(id, 2_000).unwrap()
        };
        assert_eq!(sends(&fx).len(), 1, "retry_all={retry_all}: sent at once");
        assert_eq!(e.status().blocked_until, None);
        assert_eq!(e.op(id).unwrap().not_before, None, "nor kept for a reload");
    }
}

// ---- 8. a clock set back between loads does not freeze the queue ----------------------------------

#[test]
fn deadlines_stored_before_the_clock_was_set_back_are_clamped_on_restore() {
    let mut e = Engine::new(config(ConflictStrategy::Manual, false), 18).unwrap();
    let later = 400 * 24 * HOUR;
    let (id, fx) = enqueue(&mut e, put("a", json!(1)), later);
    let fx = reply(
        &mut e,
        &only_send(&fx),
        Response::status(429).with_header("Retry-After", "30"),
        later,
    );
    let record = persisted(&fx, id).unwrap();
    assert!(record.not_before.unwrap() >= later + 30_000);
    // The user sets the clock back a year, and reloads.
    let now = 35 * 24 * HOUR;
    let mut e = Engine::restore(
        config(ConflictStrategy::Manual, false),
        19,
        vec![record],
        now,
    )
    .unwrap();
    let blocked = e.status().blocked_until.unwrap();
    assert!(blocked <= now + RetryPolicy::default().max_server_wait_ms);
    let fx = e.tick(blocked);
    assert_eq!(only_send(&fx).ops[0].id, id);
}

#[test]
fn a_possibly_applied_op_restored_behind_a_clock_set_back_is_not_trusted_to_the_horizon() {
    let mut e = Engine::new(config(ConflictStrategy::Manual, false), 20).unwrap();
    let (id, fx) = enqueue(&mut e, put("a", json!(1)), 100 * HOUR);
    let record = persisted(&fx, id).unwrap();
    // Sent (the mark is durable), then the clock is set back three days: how long ago the key was
    // sent is unknown.
    let mut e = Engine::restore(
        config(ConflictStrategy::Manual, false),
        21,
        vec![record],
        28 * HOUR,
    )
    .unwrap();
    let fx = e.drain(28 * HOUR);
    assert!(sends(&fx).is_empty());
    assert_eq!(e.op(id).unwrap().state, OpState::Unknown);
}
