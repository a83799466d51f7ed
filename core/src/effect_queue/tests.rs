use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::event::Event;
use crate::op::{OpKind, OpState, FORMAT_VERSION};

fn record(n: u8) -> OpRecord {
    OpRecord {
        format_version: FORMAT_VERSION,
        id: OpId(Uuid::from_bytes([n; 16])),
        idempotency_key: Uuid::from_bytes([n + 100; 16]),
        seq: u64::from(n),
        collection: Arc::from("todos"),
        key: Arc::from(n.to_string()),
        kind: OpKind::Put,
        payload: json!({ "n": n }).into(),
        base_version: None,
        created_at: 0,
        attempts: 0,
        state: OpState::Pending,
        last_error: None,
        next_attempt_at: None,
        not_before: None,
        retried_at: None,
        server_doc: None,
        maybe_applied: false,
        auto_base: false,
        server_version: None,
        create_only: false,
        horizon: None,
        uncharged_attempts: 0,
    }
}

/// Batch `id`, sending the op of `record(op)`.
fn batch(id: u64, op: u8) -> Batch {
    let r = record(op);
    Batch {
        id,
        refresh_auth: false,
        ops: vec![crate::effect::SendOp {
            id: r.id,
            idempotency_key: r.idempotency_key,
            collection: r.collection,
            key: r.key,
            kind: r.kind,
            payload: r.payload,
            base_version: None,
            create_only: false,
            attempt: 1,
        }],
    }
}

fn send_ids(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(b) => Some(b.id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_send_waits_for_the_writes_before_it() {
    let mut q = EffectQueue::new();
    let accepted = q.accept(vec![
        Effect::Persist(record(1)),
        Effect::Send(batch(7, 1)),
        Effect::Emit(Event::Drained),
    ]);
    assert!(send_ids(&accepted.now).is_empty(), "held until the commit");
    assert_eq!(accepted.now, vec![Effect::Emit(Event::Drained)]);
    let group = q.begin_commit().expect("a group to commit");
    assert_eq!(group.writes, vec![Write::PutOp(record(1))]);
    let done = q.commit_succeeded(group.id);
    assert_eq!(done.sends.iter().map(|b| b.id).collect::<Vec<_>>(), vec![7]);
    assert!(q.is_idle());
}

#[test]
fn a_send_also_waits_for_an_earlier_call_still_committing() {
    let mut q = EffectQueue::new();
    q.accept(vec![Effect::Persist(record(1))]);
    let first = q.begin_commit().unwrap();
    // The next call writes nothing, but its send carries the op the first call wrote.
    let accepted = q.accept(vec![Effect::Send(batch(2, 1))]);
    assert!(send_ids(&accepted.now).is_empty());
    assert_eq!(q.commit_succeeded(first.id).sends.len(), 1);
    // With nothing left to commit, a send leaves at once.
    let accepted = q.accept(vec![Effect::Send(batch(3, 1))]);
    assert_eq!(send_ids(&accepted.now), vec![3]);
}

#[test]
fn one_group_commits_at_a_time_and_later_writes_form_the_next() {
    let mut q = EffectQueue::new();
    q.accept(vec![Effect::Persist(record(1))]);
    let first = q.begin_commit().unwrap();
    q.accept(vec![Effect::Persist(record(2))]);
    q.accept(vec![Effect::Delete(record(3).id)]);
    assert!(q.begin_commit().is_none(), "storage is busy");
    q.commit_succeeded(first.id);
    let second = q.begin_commit().unwrap();
    assert_eq!(
        second.writes,
        vec![Write::PutOp(record(2)), Write::DeleteOp(record(3).id)]
    );
}

#[test]
fn a_failed_commit_rejects_its_enqueues_and_keeps_the_rest_ahead_of_newer_writes() {
    let mut q = EffectQueue::new();
    let new = record(1);
    q.accept_enqueue(new.id, vec![Effect::Persist(new.clone())]);
    q.accept(vec![
        Effect::Delete(record(2).id),
        Effect::Send(batch(9, 2)),
    ]);
    let group = q.begin_commit().unwrap();
    q.accept(vec![Effect::Persist(record(3))]);
    let rejected = q.commit_failed(group);
    assert_eq!(rejected, vec![new.id]);
    assert_eq!(q.held_sends().count(), 1, "the send still waits");
    let retry = q.begin_commit().unwrap();
    assert_eq!(
        retry.writes,
        vec![Write::DeleteOp(record(2).id), Write::PutOp(record(3))],
        "the rejected enqueue's record is gone; the kept write comes first"
    );
    let done = q.commit_succeeded(retry.id);
    assert_eq!(done.sends.len(), 1);
    assert!(done.stored.is_empty());
}

#[test]
fn sends_held_behind_a_group_that_only_held_rejected_writes_are_still_released() {
    let mut q = EffectQueue::new();
    let new = record(1);
    q.accept_enqueue(
        new.id,
        vec![Effect::Persist(new.clone()), Effect::Send(batch(4, 1))],
    );
    let group = q.begin_commit().unwrap();
    q.commit_failed(group);
    let empty = q.begin_commit().expect("an empty group keeps the order");
    assert!(empty.writes.is_empty());
    assert_eq!(q.commit_succeeded(empty.id).sends.len(), 1);
}

#[test]
fn a_late_report_for_another_group_changes_nothing() {
    let mut q = EffectQueue::new();
    q.accept(vec![Effect::Persist(record(1)), Effect::Send(batch(1, 1))]);
    let group = q.begin_commit().unwrap();
    assert!(q.commit_succeeded(group.id + 5).sends.is_empty());
    assert_eq!(q.commit_succeeded(group.id).sends.len(), 1);
}

#[test]
fn a_send_does_not_wait_for_other_ops_writes() {
    let mut q = EffectQueue::new();
    // Op 1's mark is durable; then an ack of op 2 (its delete) waits to commit.
    q.accept(vec![Effect::Persist(record(1))]);
    let first = q.begin_commit().unwrap();
    q.commit_succeeded(first.id);
    let accepted = q.accept(vec![
        Effect::Delete(record(2).id),
        Effect::Send(batch(5, 1)),
    ]);
    assert_eq!(
        send_ids(&accepted.now),
        vec![5],
        "op 1 carries nothing the delete holds"
    );
    // A send of op 2 itself waits for it.
    let accepted = q.accept(vec![Effect::Send(batch(6, 2))]);
    assert!(send_ids(&accepted.now).is_empty());
    let group = q.begin_commit().unwrap();
    assert_eq!(q.commit_succeeded(group.id).sends.len(), 1);
}

#[test]
fn a_mark_naming_an_op_holds_its_send() {
    let mut q = EffectQueue::new();
    let mark = BatchMark {
        ops: vec![
            crate::mark::MarkedOp(record(3).id, 1, 10),
            crate::mark::MarkedOp(record(4).id, 1, 10),
        ],
    };
    q.accept(vec![Effect::PersistMark(mark)]);
    let accepted = q.accept(vec![Effect::Send(batch(1, 4)), Effect::Send(batch(2, 5))]);
    assert_eq!(send_ids(&accepted.now), vec![2], "op 5 is in no mark");
    let group = q.begin_commit().unwrap();
    let done = q.commit_succeeded(group.id);
    assert_eq!(done.sends.iter().map(|b| b.id).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn every_send_waits_for_an_earlier_meta_write() {
    let mut q = EffectQueue::new();
    q.accept(vec![Effect::PersistClock(42)]);
    let accepted = q.accept(vec![Effect::Send(batch(1, 7))]);
    assert!(send_ids(&accepted.now).is_empty());
    let group = q.begin_commit().unwrap();
    assert_eq!(q.commit_succeeded(group.id).sends.len(), 1);
    let accepted = q.accept(vec![Effect::Send(batch(2, 7))]);
    assert_eq!(send_ids(&accepted.now), vec![2]);
}

#[test]
fn a_send_held_for_a_failed_group_waits_for_the_group_it_merged_into() {
    let mut q = EffectQueue::new();
    q.accept(vec![Effect::Persist(record(1)), Effect::Send(batch(1, 1))]);
    let failed = q.begin_commit().unwrap();
    q.accept(vec![Effect::Persist(record(2))]);
    q.commit_failed(failed);
    // Op 1's write now rides in the merged group: a new send of it still waits.
    let accepted = q.accept(vec![Effect::Send(batch(2, 1))]);
    assert!(send_ids(&accepted.now).is_empty());
    let retry = q.begin_commit().unwrap();
    assert_eq!(
        retry.writes,
        vec![Write::PutOp(record(1)), Write::PutOp(record(2))]
    );
    let done = q.commit_succeeded(retry.id);
    assert_eq!(
        done.sends.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
}
