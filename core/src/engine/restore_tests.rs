//! Restart: the engine rebuilt from what storage gave back (the lanes, in-flight ops resent under
//! their keys, records a newer release wrote). Batch marks read at restore: `mark_tests.rs`.

use super::tests::{config, put, sends, sent_ids};
use super::*;
use serde_json::json;

#[test]
fn restore_rebuilds_lanes_and_makes_inflight_ops_ready_with_the_same_key() {
    let mut e = Engine::new(config(), 1).unwrap();
    let mut store: HashMap<OpId, OpRecord> = HashMap::new();
    let mut marks: Vec<BatchMark> = Vec::new();
    let apply = |fx: &[Effect], store: &mut HashMap<OpId, OpRecord>, marks: &mut Vec<BatchMark>| {
        for f in fx {
            match f {
                Effect::Persist(r) => {
                    store.insert(r.id, r.clone());
                }
                Effect::Delete(id) => {
                    store.remove(id);
                }
                Effect::PersistMark(m) => marks.push(m.clone()),
                _ => {}
            }
        }
    };
    let mut ids = Vec::new();
    for k in ["a", "b", "a", "a"] {
        let (id, fx) = e.enqueue(put(k), 0).unwrap();
        apply(&fx, &mut store, &mut marks);
        ids.push(id);
    }
    let fx = e.confirm_stored(&ids, 0);
    apply(&fx, &mut store, &mut marks);
    let keys: Vec<(OpId, Uuid)> = sends(&fx)[0]
        .ops
        .iter()
        .map(|o| (o.id, o.idempotency_key))
        .collect();
    // The batch (a and b) is marked in flight by one mark, not by rewriting its records.
    assert_eq!(store[&ids[0]].state, OpState::Pending);
    assert_eq!(marks.len(), 1);
    let mut read = store[&ids[0]].clone();
    assert!(marks[0].ops[0].fold(&mut read));
    assert_eq!((read.state, read.attempts), (OpState::Inflight, 1));

    // Crash: the store's records and marks are all that is left. A new session gets a new seed.
    let records: Vec<OpRecord> = store.values().cloned().collect();
    let stored = Stored {
        records,
        marks,
        ..Stored::default()
    };
    let mut e2 = Engine::restore_from(config(), 2, stored, 1).unwrap();
    assert_eq!(e2.status().pending, 4);
    let fx = e2.drain(1);
    let resent: Vec<(OpId, Uuid)> = sends(&fx)[0]
        .ops
        .iter()
        .map(|o| (o.id, o.idempotency_key))
        .collect();
    assert_eq!(resent, keys, "same ops, same keys, same order");
    assert!(e2.op(ids[0]).unwrap().maybe_applied);
    let lane_a: Vec<OpId> = e2.ops_for("todos", "a").iter().map(|r| r.id).collect();
    assert_eq!(lane_a, vec![ids[0], ids[2], ids[3]]);
    // New ops continue the sequence after the restored ones.
    let (n, _) = e2.enqueue(put("a"), 2).unwrap();
    assert!(e2.op(n).unwrap().seq > store.values().map(|r| r.seq).max().unwrap());
}

#[test]
fn restore_rejects_future_formats_and_duplicates() {
    let mut e = Engine::new(config(), 1).unwrap();
    let (id, fx) = e.enqueue(put("a"), 0).unwrap();
    let Effect::Persist(rec) = &fx[0] else {
        panic!()
    };
    let mut future = rec.clone();
    future.format_version = FORMAT_VERSION + 1;
    assert!(matches!(
        Engine::restore(config(), 1, vec![future], 0),
        Err(CoreError::UnsupportedFormat { .. })
    ));
    assert_eq!(
        Engine::restore(config(), 1, vec![rec.clone(), rec.clone()], 0).err(),
        Some(CoreError::DuplicateOp(id))
    );
}

#[test]
fn records_admitted_in_any_order_restore_the_same_engine() {
    let mut e = Engine::new(config(), 1).unwrap();
    let mut records = Vec::new();
    for k in ["a", "b", "a", "c", "b", "a", "d"] {
        let (_, fx) = e.enqueue(put(k), 0).unwrap();
        records.extend(fx.into_iter().filter_map(|f| match f {
            Effect::Persist(r) => Some(r),
            _ => None,
        }));
    }
    // b's first op failed for good: its lane is halted, the op behind it held; d's waits in backoff.
    let failed = OpError {
        class: OutcomeClass::Permanent,
        status: Some(422),
        code: None,
        message: "refused".into(),
    };
    records[1].state = OpState::Failed;
    records[1].attempts = 1;
    records[1].last_error = Some(failed);
    records[6].state = OpState::Backoff;
    records[6].attempts = 1;
    records[6].next_attempt_at = Some(5_000);
    let docs = vec![ConfirmedDoc {
        collection: "todos".into(),
        key: "c".into(),
        version: Some("v1".into()),
        doc: Json::from_value(&json!({ "k": "confirmed" })),
        deleted: false,
        acks: Vec::new(),
    }];
    // What can be seen of a restored engine: status, lanes, view, what it sends now and later.
    let seen = |records: Vec<OpRecord>| {
        let stored = Stored {
            records,
            docs: docs.clone(),
            ..Stored::default()
        };
        let mut e = Engine::restore_from(config(), 2, stored, 1).unwrap();
        let lanes: Vec<Vec<OpId>> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| e.ops_for("todos", k).iter().map(|r| r.id).collect())
            .collect();
        let view = format!("{:?}", e.view_list("todos").collect::<Vec<_>>());
        let status = format!("{:?}", e.status());
        (
            status,
            lanes,
            view,
            sent_ids(&e.drain(1)),
            sent_ids(&e.drain(6_000)),
        )
    };
    let in_order = seen(records.clone());
    assert_eq!(in_order.1[0].len(), 3, "a's lane");
    assert_eq!(in_order.1[1].len(), 2, "b's lane, behind its failed head");
    assert_eq!(
        in_order.3.len(),
        2,
        "a's and c's heads now; b is halted, d waits"
    );
    assert_eq!(in_order.4.len(), 1, "d once its backoff is over");
    let mut reversed = records.clone();
    reversed.reverse();
    assert_eq!(seen(reversed), in_order);
    let mut shuffled = records;
    shuffled.rotate_left(3);
    shuffled.swap(0, 2);
    assert_eq!(seen(shuffled), in_order);
}

#[test]
fn a_restore_in_progress_reports_what_it_has_read_so_far() {
    let mut e = Engine::new(config(), 1).unwrap();
    let mut records = Vec::new();
    for k in ["a", "b", "a", "c"] {
        let (_, fx) = e.enqueue(put(k), 0).unwrap();
        records.extend(fx.into_iter().filter_map(|f| match f {
            Effect::Persist(r) => Some(r),
            _ => None,
        }));
    }
    records[1].state = OpState::Failed;
    records[1].last_error = Some(OpError {
        class: OutcomeClass::Permanent,
        status: Some(422),
        code: None,
        message: "refused".into(),
    });
    records[3].state = OpState::Inflight;
    let mut restoring = Engine::restoring(config(), 2, StoredMeta::default(), 1).unwrap();
    // Before the first record: restoring, nothing counted, none of the four read.
    let status = restoring.status(4);
    assert_eq!(status.state, SyncState::Restoring);
    assert_eq!((status.pending, status.failed), (0, 0));
    assert_eq!(
        status.progress,
        Some(Progress {
            current: 0,
            total: 4
        })
    );
    for record in records.drain(..2) {
        restoring.admit(record).unwrap();
    }
    // Half read: the counts are those of the records read, the failed one's error not yet shown (the
    // latest error needs every record's order).
    let status = restoring.status(4);
    assert_eq!(status.state, SyncState::Restoring);
    assert_eq!((status.pending, status.failed), (1, 1));
    assert_eq!(status.last_error, None);
    assert_eq!(status.progress.map(|p| (p.current, p.total)), Some((2, 4)));
    for record in records {
        restoring.admit(record).unwrap();
    }
    // All read (the one stored in flight counts as pending again); a store that grew while it was
    // counted never shows more read than stored.
    let status = restoring.status(3);
    assert_eq!((status.pending, status.failed), (3, 1));
    assert_eq!(status.progress.map(|p| (p.current, p.total)), Some((4, 4)));
    // Finished, the engine is no longer restoring: its status is the live one.
    let e2 = restoring.finish(Vec::new());
    assert_eq!(e2.status().state, SyncState::Syncing);
    assert_eq!(e2.status().failed, 1);
    assert!(e2.status().last_error.is_some());
}
