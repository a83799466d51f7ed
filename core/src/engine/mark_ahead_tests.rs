//! Marks ahead of sends (`mark_ahead.rs`): with one op per request, the next ops are marked in flight
//! while requests fly, so an answer's next request leaves without a write of its own.

use super::mark_tests::persisted;
use super::tests::{config, put, reply, sends};
use super::*;
use crate::EffectQueue;

fn single_op_engine(max_in_flight: usize) -> Engine {
    let config = Config {
        max_ops: 1,
        max_in_flight,
        ..config()
    };
    Engine::new(config, 7).unwrap()
}

fn marks(fx: &[Effect]) -> Vec<BatchMark> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::PersistMark(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// Enqueues `n` ops on keys of their own and confirms them; returns their ids and the confirm's effects.
fn queue(e: &mut Engine, n: usize) -> (Vec<OpId>, Vec<Effect>) {
    let ids: Vec<OpId> = (0..n)
        .map(|i| e.enqueue(put(&format!("k{i}")), 0).unwrap().0)
        .collect();
    let fx = e.confirm_stored(&ids, 0);
    (ids, fx)
}

#[test]
fn the_next_sends_are_marked_ahead_and_leave_without_a_write_of_their_own() {
    let mut e = single_op_engine(2);
    let (ids, fx) = queue(&mut e, 5);
    // Two requests fly, each after its own mark; the two ops after them are marked ahead in one write.
    assert_eq!(sends(&fx).len(), 2);
    assert_eq!(persisted(&fx), ids[..2].to_vec());
    let ahead = marks(&fx);
    assert_eq!(ahead.len(), 1);
    assert_eq!(
        ahead[0].ops.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        vec![(ids[2], 1), (ids[3], 1)],
        "the next two, each as the attempt its send will count"
    );
    // The first answer frees a slot: op 2 leaves with no write of its own, op 4 is marked ahead.
    let fx = reply(&mut e, &sends(&fx)[0], Response::status(200), 1);
    let next = sends(&fx);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].ops[0].id, ids[2]);
    assert_eq!(next[0].ops[0].attempt, 1);
    assert!(
        !persisted(&fx).contains(&ids[2]),
        "its mark ahead stands for it"
    );
    assert_eq!(marks(&fx)[0].ops[0].0, ids[4]);
}

#[test]
fn the_queue_lets_a_send_marked_ahead_pass_the_ack_that_freed_its_slot() {
    let mut e = single_op_engine(1);
    let mut q = EffectQueue::new();
    let (_, fx) = queue(&mut e, 3);
    let first = sends(&fx)[0].clone();
    q.accept(fx);
    let group = q.begin_commit().unwrap();
    assert_eq!(
        q.commit_succeeded(group.id).sends.len(),
        1,
        "the first send after its mark"
    );
    let fx = reply(&mut e, &first, Response::status(200), 1);
    let accepted = q.accept(fx);
    assert_eq!(
        sends(&accepted.now).len(),
        1,
        "the next op's mark is durable: it does not wait for the ack's delete"
    );
    assert!(accepted.group.is_some(), "the ack's writes commit after it");
}

#[test]
fn a_settled_op_sent_on_a_mark_ahead_is_written_as_it_is_and_the_mark_goes_once_spent() {
    let mut e = single_op_engine(1);
    let (ids, fx) = queue(&mut e, 2);
    let fx = reply(&mut e, &sends(&fx)[0], Response::status(200), 1);
    let second = sends(&fx)[0].clone();
    assert_eq!(second.ops[0].id, ids[1]);
    // A 503: retried later. Its record is written with the attempt, so the mark no longer speaks for
    // it, and the mark (it marked no other op) is deleted after that write.
    let fx = reply(&mut e, &second, Response::status(503), 2);
    let written = fx
        .iter()
        .position(|f| matches!(f, Effect::Persist(r) if r.id == ids[1] && r.attempts == 1))
        .expect("the op's record, written as it now is");
    let deleted = fx
        .iter()
        .position(|f| *f == Effect::DeleteMark(ids[1]))
        .expect("the spent mark is deleted");
    assert!(written < deleted);
}

#[test]
fn a_restore_reads_an_op_marked_ahead_as_sent_and_resends_it_under_its_key() {
    let mut e = single_op_engine(1);
    let (ids, fx) = queue(&mut e, 2);
    let ahead = marks(&fx).remove(0);
    let record = e.op(ids[1]).unwrap().clone();
    // The tab dies before op 1 leaves: the store holds its record as enqueued, and the mark ahead.
    let stored = Stored {
        records: vec![record.clone()],
        marks: vec![ahead],
        ..Stored::default()
    };
    let mut restored = Engine::restore_from(e.config.clone(), 9, stored, 10).unwrap();
    let op = restored.op(ids[1]).unwrap();
    assert!(op.maybe_applied, "the server may have it");
    assert_eq!(op.attempts, 1);
    let fx = restored.drain(11);
    let batch = &sends(&fx)[0];
    assert_eq!(batch.ops[0].idempotency_key, record.idempotency_key);
    assert_eq!(batch.ops[0].attempt, 2);
}

#[test]
fn an_op_given_up_before_it_left_is_not_read_as_sent_through_its_mark_ahead() {
    let mut e = single_op_engine(1);
    let (ids, fx) = queue(&mut e, 2);
    let ahead = marks(&fx).remove(0);
    let mut record = e.op(ids[1]).unwrap().clone();
    record.state = OpState::Unknown;
    assert!(
        !ahead.ops[0].fold(&mut record),
        "a halted record is newer than any mark"
    );
    assert_eq!(record.state, OpState::Unknown);
    assert_eq!(record.attempts, 0);
}

#[test]
fn a_stale_mark_ahead_is_not_used_the_send_writes_its_own() {
    let mut e = single_op_engine(1);
    let (ids, fx) = queue(&mut e, 2);
    // The answer comes a minute later: the mark ahead of op 1 is too old to date its send.
    let fx = reply(&mut e, &sends(&fx)[0], Response::status(200), 60_000);
    assert_eq!(sends(&fx)[0].ops[0].id, ids[1]);
    assert!(
        persisted(&fx).contains(&ids[1]),
        "a mark of its own, with a horizon from now"
    );
    assert!(
        fx.contains(&Effect::DeleteMark(ids[1])),
        "the old mark is spent"
    );
}

#[test]
fn pushes_of_several_ops_are_not_marked_ahead() {
    let config = Config {
        max_ops: 2,
        max_in_flight: 1,
        ..config()
    };
    let mut e = Engine::new(config, 7).unwrap();
    let (_, fx) = queue(&mut e, 6);
    assert_eq!(marks(&fx).len(), 1, "only the push's own mark");
    assert_eq!(marks(&fx)[0].ops.len(), 2);
}
