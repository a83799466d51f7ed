//! Preconditions the engine derives: a create never overwrites a document the client never saw and never
//! names a tombstone's version, and ops queued behind one follow the state its ack produced.

mod support;

use outbox_core::{ConflictStrategy, Effect, Engine, Event, NewOp, OpKind, OpState, Response};
use serde_json::{json, Value};
use support::*;

// ---- 4 and 9. creating: never over a tombstone's version, never over an unseen document -----------

#[test]
fn re_creating_a_deleted_document_is_a_create_not_a_conflict() {
    let mut e = Engine::new(config(ConflictStrategy::ServerWins, true), 9).unwrap();
    let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    let batch = only_send(&fx);
    assert!(
        batch.ops[0].create_only,
        "a put of an unseen document creates it"
    );
    assert_eq!(batch.ops[0].base_version, None);
    reply(
        &mut e,
        &batch,
        Response::status(201).with_header("ETag", "\"1\""),
        1,
    );
    let del = NewOp {
        kind: OpKind::Delete,
        payload: Value::Null.into(),
        ..put("a", Value::Null)
    };
    let (_, fx) = enqueue(&mut e, del, 2);
    let batch = only_send(&fx);
    assert_eq!(batch.ops[0].base_version.as_deref(), Some("\"1\""));
    reply(
        &mut e,
        &batch,
        Response::status(204).with_header("ETag", "\"2\""),
        3,
    );
    // The tombstone's version can never match a live document: the re-create says "create".
    let (_, fx) = enqueue(&mut e, put("a", json!(3)), 4);
    let batch = only_send(&fx);
    assert!(batch.ops[0].create_only);
    assert_eq!(batch.ops[0].base_version, None);
}

#[test]
fn a_chain_behind_a_delete_follows_it_to_a_create() {
    let mut e = Engine::new(config(ConflictStrategy::ServerWins, true), 10).unwrap();
    e.ingest(
        vec![outbox_core::ConfirmedDoc {
            collection: "todos".into(),
            key: "a".into(),
            version: Some("\"5\"".into()),
            doc: json!(5).into(),
            deleted: false,
            acks: Vec::new(),
        }],
        0,
    );
    let del = NewOp {
        kind: OpKind::Delete,
        payload: Value::Null.into(),
        ..put("a", Value::Null)
    };
    let (_, fx) = enqueue(&mut e, del, 1);
    let batch = only_send(&fx);
    let (id, _) = enqueue(&mut e, put("a", json!(6)), 2);
    assert_eq!(e.op(id).unwrap().base_version.as_deref(), Some("\"5\""));
    let fx = reply(
        &mut e,
        &batch,
        Response::status(204).with_header("ETag", "\"6\""),
        3,
    );
    let batch = only_send(&fx);
    assert!(batch.ops[0].create_only, "follows the delete to a create");
    assert_eq!(batch.ops[0].base_version, None);
}

#[test]
fn resolving_a_conflict_with_a_tombstone_re_creates_the_document() {
    let mut e = Engine::new(config(ConflictStrategy::Manual, true), 11).unwrap();
    e.ingest(
        vec![outbox_core::ConfirmedDoc {
            collection: "todos".into(),
            key: "a".into(),
            version: Some("\"1\"".into()),
            doc: json!(1).into(),
            deleted: false,
            acks: Vec::new(),
        }],
        0,
    );
    let (id, fx) = enqueue(&mut e, put("a", json!("mine")), 1);
    // Someone deleted it meanwhile (tombstone version 2).
    reply(&mut e, &only_send(&fx), conflict_412(2, None), 2);
    assert_eq!(e.op(id).unwrap().state, OpState::Conflict);
    let fx = e.resolve(id, json!("mine").into(), None, 3).unwrap();
    let batch = only_send(&fx);
    assert!(
        batch.ops[0].create_only,
        "If-None-Match: *, not If-Match the tombstone"
    );
    assert_eq!(batch.ops[0].base_version, None);
}

#[test]
fn a_put_over_a_document_this_client_never_saw_is_a_conflict_not_an_overwrite() {
    let mut e = Engine::new(config(ConflictStrategy::ServerWins, true), 12).unwrap();
    let (id, fx) = enqueue(&mut e, put("a", json!("mine")), 0);
    let batch = only_send(&fx);
    assert!(batch.ops[0].create_only);
    let fx = reply(&mut e, &batch, conflict_412(7, Some(json!("theirs"))), 1);
    assert!(e.op(id).is_none(), "server-wins drops it");
    assert!(fx
        .iter()
        .any(|f| matches!(f, Effect::Emit(Event::Conflict { .. }))));
    assert_eq!(
        e.view_item("todos", "a").unwrap().value,
        Some(&json!("theirs").into())
    );
}

#[test]
fn an_op_behind_one_whose_precondition_was_rewritten_follows_its_ack() {
    let mut e = Engine::new(config(ConflictStrategy::ClientWins, true), 24).unwrap();
    let (_, fx) = enqueue(&mut e, put("a", json!("first")), 0);
    let first = only_send(&fx);
    let (second, _) = enqueue(&mut e, put("a", json!("second")), 1);
    assert!(
        e.op(second).unwrap().create_only,
        "made on the same unseen state"
    );
    // Someone else created it: the first op rebases onto version 3 (If-Match), then lands as 4.
    let fx = reply(&mut e, &first, conflict_412(3, Some(json!("theirs"))), 2);
    let first = only_send(&fx);
    assert_eq!(first.ops[0].base_version.as_deref(), Some("\"3\""));
    let fx = reply(
        &mut e,
        &first,
        Response::status(200).with_header("ETag", "\"4\""),
        3,
    );
    // The second op was made on top of the first: it follows to 4, not "create" (a false conflict
    // with our own write).
    let batch = only_send(&fx);
    assert_eq!(batch.ops[0].id, second);
    assert_eq!(batch.ops[0].base_version.as_deref(), Some("\"4\""));
    assert!(!batch.ops[0].create_only);
}
