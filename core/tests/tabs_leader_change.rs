//! Our own tabs never conflict with each other, across a change of leader too: the chain of our acks
//! is stored with the confirmed document, so the next leader moves an op another tab made on the state
//! before those acks, whether it reads that op from the store or adopts it from a message later. (The
//! leader that acked died before the op reached it: `tests/e2e/tabs_kill.test.mjs` met this as a 412 of
//! a tab's patch against its own tabs' write, the simulator as 3 tabs seed 255.)

mod support;

use outbox_core::{ConfirmedDoc, ConflictStrategy, Effect, Engine, OpRecord, Response};
use serde_json::json;
use support::*;

fn doc(v: u32) -> ConfirmedDoc {
    ConfirmedDoc {
        collection: "todos".into(),
        key: "a".into(),
        version: Some(format!("\"{v}\"")),
        doc: json!({ "v": v }).into(),
        ..ConfirmedDoc::default()
    }
}

/// The documents among `fx`'s writes.
fn stored_docs(fx: &[Effect]) -> Vec<ConfirmedDoc> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::PersistDoc(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// A follower's op on `todos/a`, made on version `v` (it had not heard of the leader's acks yet).
fn made_on(v: u32) -> OpRecord {
    let cfg = config(ConflictStrategy::Manual, true);
    let mut tab = Engine::restore_with_docs(cfg, 9, vec![], vec![doc(v)], 0).unwrap();
    tab.set_passive(true);
    let (_, fx) = tab.enqueue(put("a", json!({ "v": "other" })), 0).unwrap();
    fx.iter()
        .find_map(|f| match f {
            Effect::Persist(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap()
}

/// A leader that acked its own ops on `todos/a` from version 1, producing 2, 3 …: the documents it
/// stored, the last one last.
fn leader_acks(versions: &[u32]) -> Vec<ConfirmedDoc> {
    let cfg = config(ConflictStrategy::Manual, true);
    let mut leader = Engine::restore_with_docs(cfg, 1, vec![], vec![doc(1)], 0).unwrap();
    let mut docs = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let at = 10 * i as u64 + 1;
        let (_, fx) = enqueue(&mut leader, put("a", json!({ "v": v })), at);
        let fx = reply(
            &mut leader,
            &only_send(&fx),
            Response::status(200).with_header("etag", format!("\"{v}\"")),
            at + 1,
        );
        docs.extend(stored_docs(&fx));
    }
    docs
}

#[test]
fn an_ack_stores_its_chain_with_the_document() {
    let docs = leader_acks(&[2, 3]);
    let last = docs.last().unwrap();
    assert_eq!(last.version.as_deref(), Some("\"3\""));
    let chain: Vec<_> = last
        .acks
        .iter()
        .map(|l| (l.base.as_deref(), l.version.as_deref()))
        .collect();
    assert_eq!(
        chain,
        [
            (Some("\"1\""), Some("\"2\"")),
            (Some("\"2\""), Some("\"3\""))
        ]
    );
    // As stored: a document written before chains were stored reads as one without.
    let text = serde_json::to_string(last).unwrap();
    assert!(text.contains("\"acks\""), "{text}");
    let old: ConfirmedDoc = serde_json::from_str(
        r#"{"collection":"todos","key":"a","version":"\"3\"","doc":{},"deleted":false}"#,
    )
    .unwrap();
    assert!(old.acks.is_empty());
    assert!(!serde_json::to_string(&doc(1)).unwrap().contains("acks"));
}

/// The leader died after its acks and before the follower's op reached it; the next leader reads the
/// op from the store, on version 1, and the document at 3 with the chain 1 -> 2 -> 3.
#[test]
fn the_next_leader_moves_a_stored_op_along_the_stored_chain() {
    let docs = leader_acks(&[2, 3]);
    let theirs = made_on(1);
    let cfg = config(ConflictStrategy::Manual, true);
    let last = docs.last().cloned().unwrap();
    let mut next =
        Engine::restore_with_docs(cfg, 2, vec![theirs.clone()], vec![last], 100).unwrap();
    let fx = next.drain(100);
    let batch = only_send(&fx);
    assert_eq!(batch.ops[0].id, theirs.id);
    assert_eq!(
        batch.ops[0].base_version.as_deref(),
        Some("\"3\""),
        "made before our own acks: follows them, as it would have in one tab"
    );
    let moved = persisted(&fx, theirs.id).expect("the new precondition is stored");
    assert_eq!(moved.base_version.as_deref(), Some("\"3\""));
    let send_at = fx
        .iter()
        .position(|f| matches!(f, Effect::Send(_)))
        .unwrap();
    let persist_at = fx
        .iter()
        .position(|f| matches!(f, Effect::Persist(r) if r.id == theirs.id))
        .unwrap();
    assert!(persist_at < send_at, "stored before it is sent");
}

/// The op's commit landed after the next leader's read: it comes by a message, and the restored
/// chain is still remembered.
#[test]
fn the_next_leader_moves_an_op_adopted_after_its_restore() {
    let docs = leader_acks(&[2]);
    let cfg = config(ConflictStrategy::Manual, true);
    let mut next = Engine::restore_with_docs(cfg, 2, vec![], docs, 100).unwrap();
    let fx = next.adopt(vec![made_on(1)], 101).unwrap();
    assert_eq!(only_send(&fx).ops[0].base_version.as_deref(), Some("\"2\""));
}

/// A chain that no longer ends at the confirmed state (someone else wrote since) moves nothing: that
/// is a real conflict, for the server to report.
#[test]
fn a_chain_past_which_someone_else_wrote_moves_nothing() {
    let mut docs = leader_acks(&[2]);
    let mut newer = docs.pop().unwrap();
    newer.version = Some("\"7\"".into());
    let theirs = made_on(1);
    let cfg = config(ConflictStrategy::Manual, true);
    let mut next = Engine::restore_with_docs(cfg, 2, vec![theirs], vec![newer], 100).unwrap();
    let fx = next.drain(100);
    assert_eq!(only_send(&fx).ops[0].base_version.as_deref(), Some("\"1\""));
}

/// The follower promoted is the tab that made the op, and its commit had not landed when its
/// promotion read the store: the op is carried over from its old engine, and follows too.
#[test]
fn an_own_op_carried_over_a_promotion_follows_the_stored_chain() {
    let docs = leader_acks(&[2]);
    let cfg = config(ConflictStrategy::Manual, true);
    let mut old = Engine::restore_with_docs(cfg.clone(), 9, vec![], vec![doc(1)], 0).unwrap();
    old.set_passive(true);
    let (id, _) = old.enqueue(put("a", json!({ "v": "mine" })), 0).unwrap();
    let mut promoted = Engine::restore_with_docs(cfg, 2, vec![], docs, 100).unwrap();
    promoted.carry_over(&old, &[id]);
    let fx = promoted.confirm_stored(&[id], 101);
    let batch = only_send(&fx);
    assert_eq!(batch.ops[0].base_version.as_deref(), Some("\"2\""));
    let persist_at = fx
        .iter()
        .position(|f| matches!(f, Effect::Persist(r) if r.id == id && r.base_version.as_deref() == Some("\"2\"")))
        .expect("the new precondition is stored");
    let send_at = fx
        .iter()
        .position(|f| matches!(f, Effect::Send(_)))
        .unwrap();
    assert!(persist_at < send_at, "stored before it is sent");
}
