use super::*;
use crate::op::OpId;
use crate::response::OpResult;

fn attempt(ended_at: u64, outcome: Outcome) -> Attempt {
    Attempt {
        kind: HistoryKind::Send,
        trigger: Trigger::Enqueue,
        started_at: ended_at.saturating_sub(10),
        ended_at,
        items: 1,
        endpoint: Some("/v1/docs/todos/1".into()),
        answer: Answer {
            outcome,
            ..Answer::success()
        },
    }
}

fn bounds(max_entries: usize, max_age_ms: u64) -> HistoryBounds {
    HistoryBounds {
        max_entries,
        max_age_ms,
    }
}

#[test]
fn ids_grow_and_continue_after_a_restore() {
    let mut h = History::restore(Vec::new(), bounds(10, 1_000), 0).0;
    let (first, cut) = h.record(attempt(100, Outcome::Success), 100);
    assert_eq!((first.id, first.duration_ms, cut), (1, 10, None));
    let (second, _) = h.record(attempt(110, Outcome::Failure), 110);
    assert_eq!(second.id, 2);
    let stored: Vec<HistoryEntry> = h.entries().cloned().rev().collect();
    let (mut restored, cut) = History::restore(stored, bounds(10, 1_000), 120);
    assert_eq!(cut, None);
    assert_eq!(restored.record(attempt(130, Outcome::Success), 130).0.id, 3);
}

#[test]
fn bounded_by_count_with_one_range_delete() {
    let mut h = History::restore(Vec::new(), bounds(3, u64::MAX), 0).0;
    for i in 0..3 {
        assert_eq!(h.record(attempt(i, Outcome::Success), i).1, None);
    }
    let (_, cut) = h.record(attempt(3, Outcome::Success), 3);
    assert_eq!(cut, Some(2), "entry 1 goes: delete every id below 2");
    assert_eq!(h.entries().map(|e| e.id).collect::<Vec<_>>(), [2, 3, 4]);
}

#[test]
fn bounded_by_age_at_record_and_at_restore() {
    let mut h = History::restore(Vec::new(), bounds(100, 1_000), 0).0;
    h.record(attempt(0, Outcome::Success), 0);
    h.record(attempt(500, Outcome::Success), 500);
    // At 1_000 the first entry is exactly max_age old: kept (the edge is inclusive).
    assert_eq!(h.record(attempt(1_000, Outcome::Success), 1_000).1, None);
    assert_eq!(h.record(attempt(1_001, Outcome::Success), 1_001).1, Some(2));
    let stored: Vec<HistoryEntry> = h.entries().cloned().collect();
    let (h, cut) = History::restore(stored, bounds(100, 1_000), 2_001);
    assert_eq!(cut, Some(4));
    assert_eq!(h.entries().map(|e| e.id).collect::<Vec<_>>(), [4]);
    let (h, cut) = History::restore(h.entries().cloned().collect(), bounds(100, 1_000), 10_000);
    assert_eq!(
        (h.entries().len(), cut),
        (0, Some(5)),
        "all gone: delete through the last id"
    );
}

#[test]
fn query_is_newest_first_and_filters() {
    let mut h = History::restore(Vec::new(), HistoryBounds::default(), 0).0;
    for (i, outcome) in [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Success,
        Outcome::Partial,
    ]
    .into_iter()
    .enumerate()
    {
        h.record(attempt(i as u64 * 10, outcome), i as u64 * 10);
    }
    let ids = |q: HistoryQuery| h.query(&q).iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(HistoryQuery::default()), [4, 3, 2, 1]);
    assert_eq!(
        ids(HistoryQuery {
            limit: Some(2),
            ..Default::default()
        }),
        [4, 3]
    );
    assert_eq!(
        ids(HistoryQuery {
            since: Some(10),
            ..Default::default()
        }),
        [4, 3, 2]
    );
    assert_eq!(
        ids(HistoryQuery {
            outcome: Some(Outcome::Success),
            ..Default::default()
        }),
        [3, 1]
    );
    assert_eq!(
        ids(HistoryQuery {
            kind: Some(HistoryKind::Pull),
            ..Default::default()
        }),
        [0u64; 0]
    );
}

#[test]
fn a_429_with_every_pacing_header() {
    let response = Response::status(429)
        .with_header("Retry-After", "30")
        .with_header("RateLimit", "\"default\";r=0;t=60")
        .with_header("RateLimit-Policy", "\"default\";q=100;w=60")
        .with_header("X-RateLimit-Limit", "100");
    let answer = Answer::of_reply(
        &Reply::whole(response),
        &[&OpKind::Put],
        &Config::default(),
        1_000,
        1_000,
    );
    assert_eq!(answer.outcome, Outcome::Failure);
    assert_eq!(answer.status, Some(429));
    assert_eq!(answer.error_code.as_deref(), Some("rate_limited"));
    assert_eq!(
        answer.rate_limit,
        Some(RateLimitSeen {
            limit: Some(100),
            remaining: Some(0),
            reset_at: Some(61_000),
            retry_after_ms: Some(30_000),
            policy: Some("\"default\";q=100;w=60".into()),
        })
    );
}

#[test]
fn acks_partial_pushes_and_missing_results() {
    let config = Config::default();
    let ok = Answer::of_reply(
        &Reply::whole(Response::status(200)),
        &[&OpKind::Put],
        &config,
        0,
        0,
    );
    assert_eq!(
        (ok.outcome, ok.status, ok.rate_limit),
        (Outcome::Success, Some(200), None)
    );
    let gone = Answer::of_reply(
        &Reply::whole(Response::status(404)),
        &[&OpKind::Delete],
        &config,
        0,
        0,
    );
    assert_eq!(
        gone.outcome,
        Outcome::Success,
        "a delete of what is gone is done"
    );
    let (a, b) = (
        OpId(uuid::Uuid::from_u128(1)),
        OpId(uuid::Uuid::from_u128(2)),
    );
    let mixed = Reply {
        response: Response::status(200).with_header("content-type", "application/json"),
        results: Some(vec![
            OpResult {
                id: a,
                response: Response::status(200),
            },
            OpResult {
                id: b,
                response: Response::status(422)
                    .with_body(serde_json::json!({ "detail": "bad title" })),
            },
        ]),
    };
    let kinds = [&OpKind::Put, &OpKind::Put];
    let partial = Answer::of_reply(&mixed, &kinds, &config, 0, 0);
    assert_eq!(partial.outcome, Outcome::Partial);
    assert_eq!(partial.error_code.as_deref(), Some("permanent"));
    assert_eq!(partial.error_message.as_deref(), Some("bad title"));
    let empty = Reply {
        response: Response::status(200),
        results: Some(Vec::new()),
    };
    assert_eq!(
        Answer::of_reply(&empty, &kinds, &config, 0, 0).outcome,
        Outcome::Failure
    );
}

#[test]
fn no_answer_says_network_or_timeout() {
    assert_eq!(
        Answer::no_answer("timed out after 15000 ms")
            .error_code
            .as_deref(),
        Some("timeout")
    );
    assert_eq!(
        Answer::no_answer("network error: x").error_code.as_deref(),
        Some("network")
    );
}

#[test]
fn the_stored_json_is_the_documented_shape() {
    let mut h = History::restore(Vec::new(), HistoryBounds::default(), 0).0;
    let mut a = attempt(20, Outcome::Failure);
    a.answer = Answer::of_pull(
        &Response::status(429).with_header("Retry-After", "5"),
        false,
        20,
        20,
    );
    let entry = h.record(a, 20).0.clone();
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": 1, "kind": "send", "trigger": "enqueue", "startedAt": 10, "endedAt": 20,
            "durationMs": 10, "items": 1, "outcome": "failure", "status": 429,
            "errorCode": "rate_limited", "errorMessage": "HTTP 429", "endpoint": "/v1/docs/todos/1",
            "rateLimit": { "limit": null, "remaining": null, "resetAt": null, "retryAfterMs": 5000, "policy": null },
        })
    );
    let back: HistoryEntry = serde_json::from_value(json).unwrap();
    assert_eq!(back, entry);
}

/// The storage cost of the history: the JSON text of typical entries (what the store holds).
#[test]
fn a_typical_entry_is_a_few_hundred_bytes() {
    let mut h = History::restore(Vec::new(), HistoryBounds::default(), 0).0;
    let ok = h
        .record(
            attempt(1_700_000_000_000, Outcome::Success),
            1_700_000_000_000,
        )
        .0
        .clone();
    let size = serde_json::to_string(&ok).unwrap().len();
    assert!((200..400).contains(&size), "{size} bytes");
}
