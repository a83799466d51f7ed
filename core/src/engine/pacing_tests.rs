//! Pacing: how long an op waits before it is sent again (`Retry-After`, a 429 that blocks every lane,
//! rate-limit headers on a success, coming back online). Failures and their backoff: `tests.rs`.

use super::tests::{
    add, config, events, next_attempt, only_batch, put, reply, sends, sent_ids, WALL,
};
use super::*;
use crate::retry::RetryPolicy;

#[test]
fn retry_after_is_a_floor_that_coming_online_does_not_skip() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let fx = reply(
        &mut e,
        &only_batch(&fx),
        Response::status(500).with_header("Retry-After", "30"),
        1_000,
    );
    let at = next_attempt(&fx, a);
    assert!(at >= 31_000);
    e.set_online(false, 2_000);
    assert_eq!(e.status().state, SyncState::Offline);
    assert!(
        sends(&e.set_online(true, 3_000)).is_empty(),
        "server asked for 30 s"
    );
    assert!(sends(&e.tick(30_999)).is_empty());
    assert_eq!(sent_ids(&e.tick(at)), vec![a]);
}

#[test]
fn coming_online_retries_backing_off_ops_at_once() {
    let cfg = Config {
        retry: RetryPolicy {
            base_ms: 60_000,
            cap_ms: 60_000,
            ..config().retry
        },
        ..config()
    };
    let mut e = Engine::new(cfg, 1).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    e.set_online(false, 5);
    let fx = e.on_network_error(only_batch(&fx).id, 10).unwrap();
    let at = next_attempt(&fx, a);
    assert!(at > 11, "this seed draws a real backoff");
    assert!(
        sends(&e.tick(11)).is_empty(),
        "nothing is sent while offline"
    );
    let (b, fx) = add(&mut e, put("b"), 12);
    assert!(sends(&fx).is_empty());
    let fx = e.set_online(true, 13);
    assert!(13 < at, "the backoff has not expired yet");
    assert_eq!(
        sent_ids(&fx),
        vec![a, b],
        "but coming online retries at once"
    );
}

#[test]
fn a_429_blocks_every_lane_until_retry_after() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let fx = reply(
        &mut e,
        &only_batch(&fx),
        Response::status(429).with_header("Retry-After", "10"),
        1_000,
    );
    assert!(events(&fx).contains(&Event::Blocked { until: 11_000 }));
    assert_eq!(e.status().blocked_until, Some(11_000));
    assert_eq!(e.status().state, SyncState::Blocked);
    assert!(fx.contains(&Effect::ScheduleWake(11_000)));
    assert_eq!(
        e.op(a).unwrap().charged_attempts(),
        0,
        "a rate limit does not use up attempts"
    );
    let (_, fx) = add(&mut e, put("b"), 2_000);
    assert!(sends(&fx).is_empty(), "other lanes are blocked too");
    assert!(sends(&e.tick(10_999)).is_empty());
    let fx = e.tick(11_000);
    assert!(events(&fx).contains(&Event::Unblocked));
    assert_eq!(sends(&fx)[0].ops.len(), 2);
    assert_eq!(e.status().blocked_until, None);
}

#[test]
fn a_503_with_retry_after_http_date_uses_the_server_clock() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (_, fx) = add(&mut e, put("a"), 0);
    let r = Response::status(503)
        .with_header("Date", "Sun, 06 Nov 1994 08:49:37 GMT")
        .with_header("Retry-After", "Sun, 06 Nov 1994 08:49:57 GMT");
    // The local wall clock is years ahead; only the 20 s difference counts.
    let fx = e
        .on_reply(only_batch(&fx).id, &Reply::whole(r), 500, WALL)
        .unwrap();
    assert!(events(&fx).contains(&Event::Blocked { until: 20_500 }));
}

#[test]
fn remaining_zero_on_a_success_blocks_until_the_reset() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (a, fx) = add(&mut e, put("a"), 0);
    let r = Response::status(200).with_header("RateLimit", "\"default\";r=0;t=5");
    let fx = reply(&mut e, &only_batch(&fx), r, 100);
    assert!(fx.contains(&Effect::Delete(a)), "the op itself is acked");
    assert!(events(&fx).contains(&Event::Blocked { until: 5_100 }));
    let (_, fx) = add(&mut e, put("b"), 200);
    assert!(sends(&fx).is_empty());
    assert_eq!(sends(&e.tick(5_100)).len(), 1);
}
