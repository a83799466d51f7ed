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
    assert_eq!(*r.payload, json!({ "cart": [1, 2] }));
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
    let mut engine = Engine::restore(Config::default(), 1, records).unwrap();
    let status = engine.status();
    assert_eq!(
        (status.pending, status.failed),
        (1, 1),
        "inflight came back as pending"
    );
    let fx = engine.drain(1_700_000_000_001);
    assert!(fx.iter().any(|e| matches!(e, outbox_core::Effect::Send(b)
        if b.ops[0].idempotency_key.to_string() == "5f0e6f3a-8a7b-4c3d-9e2f-1a2b3c4d5e6f")));
}

#[test]
fn the_current_format_round_trips_and_is_versioned() {
    let r: OpRecord = serde_json::from_str(V1_FULL).unwrap();
    let again: OpRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(r, again);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["format_version"], json!(FORMAT_VERSION));
    assert_eq!(v["kind"], json!({ "type": "custom", "name": "checkout" }));
    assert_eq!(v["state"], json!("failed"));
}
