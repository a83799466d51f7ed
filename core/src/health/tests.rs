use proptest::prelude::*;

use super::*;
use crate::history::{HistoryKind, RateLimitSeen, Trigger};

const MIN: u64 = 60_000;

fn entry(id: u64, ended_at: u64, duration_ms: u64, outcome: Outcome) -> HistoryEntry {
    HistoryEntry {
        id,
        kind: HistoryKind::Send,
        trigger: Trigger::Enqueue,
        started_at: ended_at - duration_ms,
        ended_at,
        duration_ms,
        items: 1,
        outcome,
        status: Some(if outcome == Outcome::Failure {
            503
        } else {
            200
        }),
        error_code: None,
        error_message: None,
        endpoint: Some("/docs/a/1".into()),
        rate_limit: None,
    }
}

fn h(entries: &[HistoryEntry], now: u64, inputs: &HealthInputs) -> Health {
    health(entries, now, inputs, &HealthConfig::default())
}

#[test]
fn nothing_recorded_is_healthy_with_no_rates() {
    let health = h(&[], 0, &HealthInputs::default());
    assert!(health.healthy);
    assert_eq!(health.success_rate, None);
    assert_eq!(
        (health.mean_duration_ms, health.p95_duration_ms),
        (None, None)
    );
    assert_eq!(health.rate_limit, RateLimitHealth::default());
}

#[test]
fn success_rate_mean_and_p95_over_the_window() {
    let now = 10 * 60 * MIN;
    // 20 attempts in the window, durations 10..=200; 5 of them failed. One old attempt outside it.
    let mut entries = vec![entry(1, now - 2 * 60 * MIN, 5_000, Outcome::Failure)];
    for i in 1..=20u64 {
        let outcome = if i % 4 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        entries.push(entry(1 + i, now - MIN + i, i * 10, outcome));
    }
    entries.push(entry(22, now, 1, Outcome::Success));
    let health = h(&entries, now, &HealthInputs::default());
    assert_eq!(health.success_rate, Some(16.0 / 21.0));
    // Durations 1, 10..=200: mean (1 + 2100) / 21 = 100.05 → 100; nearest rank ceil(0.95*21) = 20th → 190.
    assert_eq!(health.mean_duration_ms, Some(100));
    assert_eq!(health.p95_duration_ms, Some(190));
    assert_eq!(health.consecutive_failures, 0);
    assert_eq!(health.last_success_at, Some(now));
    assert_eq!(health.last_failure_at, Some(now - MIN + 20));
}

#[test]
fn p95_of_one_and_of_a_hundred() {
    let one = [entry(1, 100, 42, Outcome::Success)];
    assert_eq!(
        h(&one, 100, &HealthInputs::default()).p95_duration_ms,
        Some(42)
    );
    let hundred: Vec<_> = (1..=100)
        .map(|i| entry(i, 1_000, i, Outcome::Success))
        .collect();
    let health = h(&hundred, 1_000, &HealthInputs::default());
    assert_eq!(health.p95_duration_ms, Some(95));
    assert_eq!(health.mean_duration_ms, Some(51), "50.5 rounds up");
}

#[test]
fn the_window_edge_is_inclusive() {
    let window = HealthConfig::default().window_ms;
    let now = 2 * window;
    let at_edge = [entry(1, now - window, 10, Outcome::Success)];
    assert_eq!(
        h(&at_edge, now, &HealthInputs::default()).success_rate,
        Some(1.0)
    );
    let past_edge = [entry(1, now - window - 1, 10, Outcome::Success)];
    let health = h(&past_edge, now, &HealthInputs::default());
    assert_eq!(health.success_rate, None);
    assert_eq!(
        health.last_success_at,
        Some(now - window - 1),
        "the last success is kept at any age"
    );
}

#[test]
fn drains_are_not_attempts() {
    let mut drain = entry(1, 100, 50, Outcome::Failure);
    drain.kind = HistoryKind::Drain;
    let health = h(&[drain], 100, &HealthInputs::default());
    assert_eq!(
        (health.success_rate, health.consecutive_failures),
        (None, 0)
    );
}

#[test]
fn failing_after_three_consecutive_failures_and_a_partial_ends_the_run() {
    let mut entries = vec![entry(1, 10, 1, Outcome::Success)];
    entries.push(entry(2, 20, 1, Outcome::Failure));
    entries.push(entry(3, 30, 1, Outcome::Failure));
    let health = h(&entries, 40, &HealthInputs::default());
    assert_eq!(health.consecutive_failures, 2);
    assert!(health.healthy);
    entries.push(entry(4, 40, 1, Outcome::Failure));
    let health = h(&entries, 40, &HealthInputs::default());
    assert_eq!(
        health.alerts,
        [Alert::Failing {
            consecutive_failures: 3
        }]
    );
    assert!(!health.healthy);
    entries.push(entry(5, 50, 1, Outcome::Partial));
    let health = h(&entries, 50, &HealthInputs::default());
    assert_eq!(health.consecutive_failures, 0);
    assert_eq!(health.last_success_at, Some(50));
    assert!(health.healthy);
}

#[test]
fn stale_counts_from_the_later_of_the_last_success_and_the_oldest_pending_op() {
    let stale = HealthConfig::default().stale_after_ms;
    let entries = [entry(1, 1_000, 1, Outcome::Success)];
    let inputs = HealthInputs {
        pending: 2,
        oldest_pending_at: Some(500),
        ..Default::default()
    };
    assert!(h(&entries, 1_000 + stale - 1, &inputs).healthy);
    assert_eq!(
        h(&entries, 1_000 + stale, &inputs).alerts,
        [Alert::Stale {
            since: 1_000,
            pending: 2
        }]
    );
    // Ops enqueued long after the last success: stale only once they have waited themselves.
    let inputs = HealthInputs {
        pending: 1,
        oldest_pending_at: Some(5 * stale),
        ..Default::default()
    };
    assert!(h(&entries, 5 * stale + 1, &inputs).healthy);
    // Nothing pending: never stale.
    assert!(h(&entries, 100 * stale, &HealthInputs::default()).healthy);
    // Never a success: from the oldest pending op.
    let inputs = HealthInputs {
        pending: 1,
        oldest_pending_at: Some(0),
        ..Default::default()
    };
    assert_eq!(
        h(&[], stale, &inputs).alerts,
        [Alert::Stale {
            since: 0,
            pending: 1
        }]
    );
}

#[test]
fn a_429_in_the_window_is_rate_limited_until_its_retry_after() {
    let mut limited = entry(2, 10 * MIN, 20, Outcome::Failure);
    limited.status = Some(429);
    limited.endpoint = Some("/push".into());
    limited.rate_limit = Some(RateLimitSeen {
        limit: Some(100),
        remaining: Some(0),
        reset_at: Some(10 * MIN + 30_000),
        retry_after_ms: Some(60_000),
        policy: None,
    });
    let mut later = entry(3, 11 * MIN, 20, Outcome::Success);
    later.rate_limit = Some(RateLimitSeen {
        remaining: Some(99),
        ..Default::default()
    });
    let entries = [entry(1, MIN, 10, Outcome::Success), limited, later];
    let health = h(&entries, 12 * MIN, &HealthInputs::default());
    assert_eq!(
        health.rate_limit,
        RateLimitHealth {
            limit: Some(100),
            remaining: Some(99),
            reset_at: Some(10 * MIN + 30_000),
            violations: 1,
            last_violation: Some(Violation {
                at: 10 * MIN,
                endpoint: Some("/push".into()),
                retry_after_ms: Some(60_000),
            }),
        }
    );
    assert_eq!(
        health.alerts,
        [Alert::RateLimited {
            until: Some(11 * MIN),
            violations: 1
        }]
    );
    // Out of the window: no violation counted, but the last one is still reported.
    let health = h(
        &entries,
        10 * MIN + HealthConfig::default().window_ms + 1,
        &HealthInputs::default(),
    );
    assert_eq!(health.rate_limit.violations, 0);
    assert!(health.rate_limit.last_violation.is_some());
    assert!(health.healthy);
}

#[test]
fn blocked_now_is_rate_limited_without_a_429() {
    let inputs = HealthInputs {
        blocked_until: Some(5_000),
        ..Default::default()
    };
    assert_eq!(
        h(&[], 1_000, &inputs).alerts,
        [Alert::RateLimited {
            until: Some(5_000),
            violations: 0
        }]
    );
    assert!(
        h(&[], 5_000, &inputs).healthy,
        "a block that has ended is no alert"
    );
}

#[test]
fn storage_and_dead_letters_come_from_the_inputs() {
    let inputs = HealthInputs {
        storage_error: Some(("QUOTA_EXCEEDED".into(), "disk full".into())),
        failed: 1,
        unknown: 2,
        ..Default::default()
    };
    assert_eq!(
        h(&[], 0, &inputs).alerts,
        [
            Alert::StorageBlocked {
                code: "QUOTA_EXCEEDED".into(),
                message: "disk full".into()
            },
            Alert::DeadLetters {
                failed: 1,
                conflicts: 0,
                unknown: 2
            },
        ]
    );
}

#[test]
fn the_json_is_camel_case_with_typed_alerts() {
    let inputs = HealthInputs {
        pending: 1,
        oldest_pending_at: Some(0),
        ..Default::default()
    };
    let json = serde_json::to_value(h(&[], DEFAULT_STALE_AFTER_MS, &inputs)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "healthy": false, "lastSuccessAt": null, "lastFailureAt": null, "consecutiveFailures": 0,
            "successRate": null, "meanDurationMs": null, "p95DurationMs": null,
            "rateLimit": { "limit": null, "remaining": null, "resetAt": null, "violations": 0, "lastViolation": null },
            "alerts": [{ "type": "stale", "since": 0, "pending": 1 }],
        })
    );
    let failing = serde_json::to_value(Alert::Failing {
        consecutive_failures: 4,
    })
    .unwrap();
    assert_eq!(
        failing,
        serde_json::json!({ "type": "failing", "consecutiveFailures": 4 })
    );
}

fn arb_entries() -> impl Strategy<Value = Vec<HistoryEntry>> {
    prop::collection::vec(
        (0u64..10_000_000, 0u64..5_000, 0u8..3, any::<bool>()),
        0..60,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (ended, duration, outcome, limited))| {
                let outcome =
                    [Outcome::Success, Outcome::Partial, Outcome::Failure][outcome as usize];
                let mut e = entry(i as u64 + 1, ended + duration, duration, outcome);
                if limited {
                    e.status = Some(429);
                }
                e
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn deterministic_order_free_and_consistent(entries in arb_entries(), now in 0u64..12_000_000, pending in 0usize..3) {
        let inputs = HealthInputs { pending, oldest_pending_at: Some(0), ..Default::default() };
        let config = HealthConfig::default();
        let a = health(&entries, now, &inputs, &config);
        let mut shuffled = entries.clone();
        shuffled.reverse();
        prop_assert_eq!(&a, &health(&shuffled, now, &inputs, &config));
        prop_assert_eq!(a.healthy, a.alerts.is_empty());
        if let Some(rate) = a.success_rate {
            prop_assert!((0.0..=1.0).contains(&rate));
        }
        match (a.mean_duration_ms, a.p95_duration_ms) {
            (Some(mean), Some(p95)) => {
                let max = entries.iter().map(|e| e.duration_ms).max().unwrap();
                prop_assert!(mean <= max && p95 <= max);
            }
            (None, None) => prop_assert_eq!(a.success_rate, None),
            _ => prop_assert!(false, "mean and p95 come together"),
        }
        let failing = a.alerts.iter().any(|al| matches!(al, Alert::Failing { .. }));
        prop_assert_eq!(failing, a.consecutive_failures >= config.failing_after);
    }
}
