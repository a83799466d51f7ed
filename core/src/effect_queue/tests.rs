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

fn batch(id: u64) -> Batch {
    Batch {
        id,
        refresh_auth: false,
        ops: Vec::new(),
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
        Effect::Send(batch(7)),
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
    // The next call writes nothing of its own, but its send follows the first call's write.
    let accepted = q.accept(vec![Effect::Send(batch(2))]);
    assert!(send_ids(&accepted.now).is_empty());
    assert_eq!(q.commit_succeeded(first.id).sends.len(), 1);
    // With nothing left to commit, a send leaves at once.
    let accepted = q.accept(vec![Effect::Send(batch(3))]);
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
    q.accept(vec![Effect::Delete(record(2).id), Effect::Send(batch(9))]);
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
        vec![Effect::Persist(new.clone()), Effect::Send(batch(4))],
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
    q.accept(vec![Effect::Persist(record(1)), Effect::Send(batch(1))]);
    let group = q.begin_commit().unwrap();
    assert!(q.commit_succeeded(group.id + 5).sends.is_empty());
    assert_eq!(q.commit_succeeded(group.id).sends.len(), 1);
}
