//! In-flight marks: a batch of several ops is marked by one `PersistMark` instead of a rewrite of each
//! op, taken back when the batch settles, and folded into the records by a restore that finds it.

use serde_json::json;

use super::tests::only_batch;
use super::*;
use crate::op::OpKind;
use crate::response::OpResult;

const WALL: u64 = 1_700_000_000_000;

fn engine() -> Engine {
    let config = Config {
        max_ops: 10,
        default_collection: crate::CollectionConfig {
            conflict: crate::ConflictStrategy::Manual,
            versioned: false,
        },
        ..Config::default()
    };
    Engine::new(config, 3).unwrap()
}

fn put(key: &str) -> NewOp {
    NewOp {
        collection: "todos".into(),
        key: key.into(),
        kind: OpKind::Put,
        payload: json!({ "k": key }).into(),
        base_version: None,
    }
}

/// Enqueues one op per key and confirms them together, so they leave in one batch; returns the ids,
/// the enqueues' records (as stored) and the confirm's effects.
fn batch_of(e: &mut Engine, keys: &[&str]) -> (Vec<OpId>, Vec<OpRecord>, Vec<Effect>) {
    let (mut ids, mut records) = (Vec::new(), Vec::new());
    for key in keys {
        let (id, fx) = e.enqueue(put(key), 0).unwrap();
        ids.push(id);
        records.extend(fx.into_iter().filter_map(|f| match f {
            Effect::Persist(r) => Some(r),
            _ => None,
        }));
    }
    let fx = e.confirm_stored(&ids, 0);
    (ids, records, fx)
}

pub(super) fn persisted(fx: &[Effect]) -> Vec<OpId> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::Persist(r) => Some(r.id),
            _ => None,
        })
        .collect()
}

fn mark_of(fx: &[Effect]) -> BatchMark {
    let marks: Vec<&BatchMark> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::PersistMark(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(marks.len(), 1, "expected one mark in {fx:?}");
    marks[0].clone()
}

#[test]
fn a_batch_of_several_ops_is_marked_by_one_write_before_its_send() {
    let mut e = engine();
    let (ids, _, fx) = batch_of(&mut e, &["a", "b", "c"]);
    assert!(persisted(&fx).is_empty(), "no op is rewritten: {fx:?}");
    let mark = mark_of(&fx);
    let at = |want: fn(&Effect) -> bool| fx.iter().position(want).unwrap();
    assert!(at(|f| matches!(f, Effect::PersistMark(_))) < at(|f| matches!(f, Effect::Send(_))));
    let horizon = e.op(ids[0]).unwrap().horizon.unwrap();
    let expected: Vec<MarkedOp> = ids.iter().map(|id| MarkedOp(*id, 1, horizon)).collect();
    assert_eq!(mark.ops, expected);
    assert_eq!(
        BatchMark::meta_key(ids[0]),
        format!("{}{}", crate::MARK_META_PREFIX, ids[0])
    );
}

#[test]
fn a_batch_of_one_op_rewrites_the_op_and_has_no_mark() {
    let mut e = engine();
    let (ids, _, fx) = batch_of(&mut e, &["a"]);
    assert_eq!(persisted(&fx), ids);
    assert!(!fx.iter().any(|f| matches!(f, Effect::PersistMark(_))));
}

#[test]
fn settling_a_batch_writes_its_ops_then_deletes_its_mark() {
    let mut e = engine();
    let (ids, _, fx) = batch_of(&mut e, &["a", "b"]);
    let sent = only_batch(&fx);
    // a is acked, b's answer is missing: b is retried, and its record now counts the attempt.
    let results = vec![OpResult {
        id: ids[0],
        response: Response::status(200).with_body(json!({ "k": "a" })),
    }];
    let fx = e
        .on_reply(sent.id, &Reply::per_op(results), 1, WALL)
        .unwrap();
    let last_op_write = fx
        .iter()
        .rposition(|f| matches!(f, Effect::Persist(_) | Effect::Delete(_)))
        .unwrap();
    let unmark = fx
        .iter()
        .position(|f| *f == Effect::DeleteMark(ids[0]))
        .expect("the mark is deleted");
    assert!(last_op_write < unmark);
    assert!(fx.contains(&Effect::Delete(ids[0])));
    let b = fx
        .iter()
        .find_map(|f| match f {
            Effect::Persist(r) if r.id == ids[1] => Some(r),
            _ => None,
        })
        .expect("b is written once");
    assert_eq!((b.attempts, b.horizon.is_some()), (1, true));
    assert_eq!(persisted(&fx).iter().filter(|id| **id == ids[1]).count(), 1);
}

#[test]
fn a_restore_reads_the_records_through_a_mark_it_finds_then_drops_it() {
    let mut e = engine();
    let (ids, records, fx) = batch_of(&mut e, &["a", "b"]);
    let mark = mark_of(&fx);
    let keys: Vec<Uuid> = only_batch(&fx)
        .ops
        .iter()
        .map(|o| o.idempotency_key)
        .collect();
    // The tab dies with the batch in flight: the store holds the enqueued records and the mark.
    let stored = Stored {
        records,
        marks: vec![mark.clone()],
        ..Stored::default()
    };
    let mut e2 = Engine::restore_from(e.config.clone(), 9, stored, 10).unwrap();
    for (id, marked) in ids.iter().zip(&mark.ops) {
        let r = e2.op(*id).unwrap();
        assert!(r.maybe_applied, "the server may have applied it");
        assert_eq!((r.attempts, r.horizon), (1, Some(marked.2)));
    }
    let fx = e2.drain(10);
    // First the records as read (so the store says so without the mark), then the mark goes.
    let written = persisted(&fx);
    assert!(ids.iter().all(|id| written.contains(id)));
    let unmark = fx
        .iter()
        .position(|f| *f == Effect::DeleteMark(ids[0]))
        .unwrap();
    assert!(
        fx[..unmark]
            .iter()
            .filter(|f| matches!(f, Effect::Persist(_)))
            .count()
            >= 2
    );
    let resent: Vec<Uuid> = only_batch(&fx)
        .ops
        .iter()
        .map(|o| o.idempotency_key)
        .collect();
    assert_eq!(resent, keys, "resent under the same keys");
}

#[test]
fn a_mark_older_than_the_record_is_not_applied() {
    let mut e = engine();
    let (ids, _, fx) = batch_of(&mut e, &["a", "b"]);
    let mark = mark_of(&fx);
    let mut newer = e.op(ids[0]).unwrap().clone();
    newer.state = OpState::Failed;
    assert!(
        !mark.ops[0].fold(&mut newer),
        "a record that counts the attempt is newer"
    );
    assert_eq!(newer.state, OpState::Failed);
    let mut other = e.op(ids[1]).unwrap().clone();
    other.attempts = 0;
    assert!(
        !mark.ops[0].fold(&mut other),
        "a mark applies only to its own op"
    );
}

#[test]
fn a_mark_reads_back_from_its_text_and_nothing_else_reads_as_one() {
    let mut e = engine();
    let (_, _, fx) = batch_of(&mut e, &["a", "b"]);
    let mark = mark_of(&fx);
    assert_eq!(BatchMark::from_text(&mark.to_text()), Some(mark));
    for other in [
        "1706464022735",
        "\"cursor\"",
        "[]",
        "[[\"not an id\", 1, 2]]",
        "{\"ops\": []}",
    ] {
        assert_eq!(BatchMark::from_text(other), None, "{other}");
    }
}
