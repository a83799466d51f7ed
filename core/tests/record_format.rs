//! The stored record format is a contract with every IndexedDB in the field: records written by an
//! older build must still decode. Each literal below is a record exactly as a released format version
//! wrote it; never edit them, add a new one when the format changes.

use outbox_core::{Config, Engine, OpKind, OpRecord, OpState, OutcomeClass, FORMAT_VERSION};
use serde_json::json;

/// A v1 record with only the required fields (the optional ones are absent, as a minimal writer
/// would leave them).
const V1_MINIMAL: &str = r#"{
  "format_version": 1,
  "id": "0b9d0c7e-6b7a-4e55-9f7c-2b8f2d7f6a10",
  "idempotency_key": "5f0e6f3a-8a7b-4c3d-9e2f-1a2b3c4d5e6f",
  "seq": 7,
  "collection": "todos",
  "key": "42",
  "kind": { "type": "patch" },
  "payload": { "done": true },
  "created_at": 1700000000000,
  "state": "inflight"
}"#;

/// A fully populated v1 record of a failed custom op.
const V1_FULL: &str = r#"{
  "format_version": 1,
  "id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
  "idempotency_key": "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",
  "seq": 3,
  "collection": "orders",
  "key": "o-1",
  "kind": { "type": "custom", "name": "checkout" },
  "payload": { "cart": [1, 2] },
  "base_version": "\"v3\"",
  "created_at": 1000,
  "attempts": 4,
  "state": "failed",
  "last_error": { "class": "permanent", "status": 422, "code": "https://example.com/invalid", "message": "bad cart" },
  "next_attempt_at": null,
  "not_before": null,
  "retried_at": 900,
  "server_doc": null,
  "maybe_applied": false
}"#;

/// A v2 record of an op of unknown outcome: a create (`If-None-Match: *`) whose key the server may have
/// forgotten.
const V2_UNKNOWN: &str = r#"{
  "format_version": 2,
  "id": "3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b",
  "idempotency_key": "4f5a6b7c-8d9e-4f0a-9b1c-2d3e4f5a6b7c",
  "seq": 11,
  "collection": "notes",
  "key": "n-9",
  "kind": { "type": "put" },
  "payload": { "text": "hello", "weight": 0.1 },
  "created_at": 1700000000000,
  "attempts": 2,
  "state": "unknown",
  "last_error": { "class": "transient", "status": null, "code": "outcome_unknown", "message": "no answer" },
  "maybe_applied": true,
  "auto_base": true,
  "create_only": true,
  "horizon": 1700077760000
}"#;

#[test]
fn a_minimal_v1_record_still_decodes() {
    let r: OpRecord = serde_json::from_str(V1_MINIMAL).unwrap();
    assert_eq!(r.format_version, 1);
    assert_eq!(r.id.to_string(), "0b9d0c7e-6b7a-4e55-9f7c-2b8f2d7f6a10");
    assert_eq!(r.kind, OpKind::Patch);
    assert_eq!(r.state, OpState::Inflight);
    assert_eq!(
        (r.attempts, r.last_error.clone(), r.next_attempt_at),
        (0, None, None)
    );
    assert_eq!(r.base_version, None);
    assert!(!r.maybe_applied);
}

#[test]
fn a_full_v1_record_still_decodes() {
    let r: OpRecord = serde_json::from_str(V1_FULL).unwrap();
    assert_eq!(
        r.kind,
        OpKind::Custom {
            name: "checkout".into()
        }
    );
    assert_eq!(r.payload.value(), json!({ "cart": [1, 2] }));
    assert_eq!(r.base_version.as_deref(), Some("\"v3\""));
    assert_eq!(r.state, OpState::Failed);
    let err = r.last_error.unwrap();
    assert_eq!(
        (err.class, err.status),
        (OutcomeClass::Permanent, Some(422))
    );
    assert_eq!(r.retried_at, Some(900));
}

#[test]
fn old_records_restore_into_a_working_engine() {
    let records = vec![
        serde_json::from_str(V1_MINIMAL).unwrap(),
        serde_json::from_str(V1_FULL).unwrap(),
    ];
    let now = 1_700_000_000_001;
    let mut engine = Engine::restore(Config::default(), 1, records, now).unwrap();
    let status = engine.status();
    assert_eq!(
        (status.pending, status.failed),
        (1, 1),
        "inflight came back as pending"
    );
    let fx = engine.drain(now);
    assert!(fx.iter().any(|e| matches!(e, outbox_core::Effect::Send(b)
        if b.ops[0].idempotency_key.to_string() == "5f0e6f3a-8a7b-4c3d-9e2f-1a2b3c4d5e6f")));
    // Written back in the current format, with the horizon a v1 record lacked (counted from its
    // creation, the earliest its key can have been sent).
    let stored = fx
        .iter()
        .find_map(|e| match e {
            outbox_core::Effect::Persist(r) if r.seq == 7 => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(stored.format_version, FORMAT_VERSION);
    assert!(stored.maybe_applied);
    assert!(stored.horizon.unwrap() > 1_700_000_000_000);
}

#[test]
fn a_v2_record_of_unknown_outcome_still_decodes_and_stays_held() {
    let r: OpRecord = serde_json::from_str(V2_UNKNOWN).unwrap();
    assert_eq!(r.state, OpState::Unknown);
    assert!(r.create_only && r.maybe_applied && r.auto_base);
    assert_eq!(r.horizon, Some(1_700_077_760_000));
    let mut engine = Engine::restore(Config::default(), 1, vec![r], 1_700_000_000_001).unwrap();
    assert_eq!(engine.status().unknown, 1);
    let fx = engine.drain(1_700_000_000_002);
    assert!(
        !fx.iter().any(|e| matches!(e, outbox_core::Effect::Send(_))),
        "an unknown op is never resent by itself"
    );
}

#[test]
fn the_current_format_round_trips_and_is_versioned() {
    for text in [V1_FULL, V2_UNKNOWN] {
        let r: OpRecord = serde_json::from_str(text).unwrap();
        let again: OpRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(r, again);
    }
    // What the engine writes carries the current version.
    let mut engine = Engine::new(Config::default(), 3).unwrap();
    let (_, fx) = engine
        .enqueue(
            outbox_core::NewOp {
                collection: "orders".into(),
                key: "o-1".into(),
                kind: OpKind::Custom {
                    name: "checkout".into(),
                },
                payload: json!({ "cart": [1, 2] }).into(),
                base_version: None,
            },
            5,
        )
        .unwrap();
    let written = fx
        .iter()
        .find_map(|e| match e {
            outbox_core::Effect::Persist(r) => Some(serde_json::to_value(r).unwrap()),
            _ => None,
        })
        .unwrap();
    assert_eq!(written["format_version"], json!(FORMAT_VERSION));
    assert_eq!(
        written["kind"],
        json!({ "type": "custom", "name": "checkout" })
    );
    assert_eq!(written["state"], json!("pending"));
}

#[test]
fn an_older_records_attempts_all_count_against_the_budget() {
    // `uncharged_attempts` came without a format bump: absent, it reads as 0, which is exactly what
    // such a record meant (its `attempts` were counted since the last retry, less what a rate limit
    // gave back).
    let r: OpRecord = serde_json::from_str(V1_FULL).unwrap();
    assert_eq!((r.attempts, r.uncharged_attempts), (4, 0));
    assert_eq!(r.charged_attempts(), 4);
    // Written only when set, and read back.
    let mut written = serde_json::to_value(&r).unwrap();
    assert!(written.get("uncharged_attempts").is_none());
    written["uncharged_attempts"] = json!(3);
    let again: OpRecord = serde_json::from_value(written).unwrap();
    assert_eq!(again.charged_attempts(), 1);
}
