//! Many tabs on one store: seqs that collide, a leader that adopts a follower's ops, a follower's
//! passive engine, and the one lane order that the leader, its followers and the next leader share.
//! The randomized proof (several engines on one store, the lock moving at crash points) is the
//! simulator's multi-tab mode (`sim/`).

mod support;

use outbox_core::{ConflictStrategy, Effect, Engine, OpId, OpRecord, OpState, Response};
use serde_json::json;
use support::*;

fn stored(fx: &[Effect]) -> Vec<OpRecord> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::Persist(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn sent_ids(fx: &[Effect]) -> Vec<OpId> {
    sends(fx)
        .iter()
        .flat_map(|b| b.ops.iter().map(|o| o.id))
        .collect()
}

/// A tab that enqueued `n` puts on `key` into its own engine, from an empty store: its records carry
/// seqs 0, 1, … like every other such tab's.
fn tab_records(seed: u64, key: &str, n: usize) -> Vec<OpRecord> {
    let mut tab = Engine::new(config(ConflictStrategy::Manual, false), seed).unwrap();
    tab.pause(0);
    let mut records = Vec::new();
    for i in 0..n {
        let (_, fx) = enqueue(&mut tab, put(key, json!({ "tab": seed, "i": i })), 0);
        records.extend(stored(&fx));
    }
    records
}

/// The first case: two tabs each stored two puts (seqs 0, 1 and 0, 1) and closed; the next
/// tab must send all four, not the two whose seqs happened to be scheduled first.
#[test]
fn colliding_seqs_from_two_tabs_hide_no_op() {
    let mut records = tab_records(1, "a", 2);
    records.extend(tab_records(2, "b", 2));
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 0, 1]
    );
    let mut e = Engine::restore(config(ConflictStrategy::Manual, false), 3, records, 1).unwrap();
    let mut sent = Vec::new();
    let mut fx = e.drain(1);
    for round in 0..8 {
        let batches = sends(&fx);
        if batches.is_empty() {
            break;
        }
        fx = Vec::new();
        for batch in batches {
            sent.extend(batch.ops.iter().map(|o| o.id));
            fx.extend(reply(&mut e, &batch, Response::status(200), 2 + round));
        }
    }
    assert_eq!(sent.len(), 4, "every stored op is sent");
    assert_eq!(e.status().pending, 0);
}

/// A follower's engine shows its own op at once and stores it, but sends nothing and writes nothing
/// else; the leader adopts the stored record, sends it, and the next seq it hands out is above it.
#[test]
fn a_follower_stores_and_the_leader_adopts_and_sends() {
    let cfg = config(ConflictStrategy::Manual, false);
    let mut leader = Engine::new(cfg.clone(), 1).unwrap();
    let mut follower = Engine::new(cfg, 2).unwrap();
    follower.set_passive(true);
    for _ in 0..5 {
        follower.enqueue(put("x", json!(0)), 0).unwrap();
    }
    let (id, fx) = follower
        .enqueue(put("a", json!({ "from": "b" })), 0)
        .unwrap();
    let record = stored(&fx).pop().unwrap();
    let fx = follower.confirm_stored(&[id], 1);
    assert!(sends(&fx).is_empty(), "a follower never sends");
    assert!(
        fx.iter()
            .all(|f| !matches!(f, Effect::Persist(_) | Effect::PersistClock(_))),
        "a follower writes only its own enqueues"
    );
    assert_eq!(
        follower.view_item("todos", "a").unwrap().value,
        Some(&json!({ "from": "b" }).into())
    );

    let fx = leader.adopt(vec![record.clone()], 2).unwrap();
    assert_eq!(sent_ids(&fx), [id], "the leader sends the adopted op");
    assert!(leader.view_item("todos", "a").is_some());
    // Adopting it again (a message repeated, a scan that overlaps) changes nothing.
    let fx = leader.adopt(vec![record.clone()], 3).unwrap();
    assert!(sent_ids(&fx).is_empty());
    assert_eq!(leader.status().in_flight, 1);
    let (mine, _) = leader.enqueue(put("c", json!(1)), 4).unwrap();
    assert!(leader.op(mine).unwrap().seq > record.seq, "a Lamport clock");
}

/// Two tabs edit one entity: wherever the ops come from and in whatever order the leader hears of
/// them, its lane is the `(seq, id)` order, which is also the order a restore (the next leader, or a
/// follower's mirror) builds; an op already sent keeps the head.
#[test]
fn the_live_lane_and_the_restored_lane_agree() {
    let cfg = config(ConflictStrategy::Manual, false);
    let mut leader = Engine::new(cfg.clone(), 1).unwrap();
    leader.pause(0);
    let mut all = Vec::new();
    for i in 0..3 {
        let (_, fx) = enqueue(&mut leader, put("a", json!({ "leader": i })), 0);
        all.extend(stored(&fx));
    }
    // Another tab that never heard of the leader's ops: its seqs 0..3 collide with them.
    let others = tab_records(7, "a", 3);
    let fx = leader
        .adopt(others.iter().rev().cloned().collect(), 1)
        .unwrap();
    all.extend(stored(&fx));
    all.extend(others);
    let live: Vec<OpId> = leader.ops_for("todos", "a").iter().map(|r| r.id).collect();
    let mut expected: Vec<&OpRecord> = all.iter().collect();
    expected.sort_by_key(|r| (r.seq, r.id));
    let expected: Vec<OpId> = expected.iter().map(|r| r.id).collect();
    assert_eq!(live, expected, "the live lane is in (seq, id) order");
    let restored = Engine::restore(cfg.clone(), 2, all.clone(), 2).unwrap();
    let restored: Vec<OpId> = restored
        .ops_for("todos", "a")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(restored, live, "a restore builds the same lane");

    // The head is sent; an op that sorts before it arrives and must not overtake it.
    let fx = leader.resume(3);
    let head = only_send(&fx);
    assert_eq!(head.ops[0].id, live[0]);
    let mut mark = stored(&fx);
    let mut early = tab_records(9, "a", 1).pop().unwrap();
    early.seq = 0;
    let early_id = early.id;
    leader.adopt(vec![early.clone()], 4).unwrap();
    let lane: Vec<OpId> = leader.ops_for("todos", "a").iter().map(|r| r.id).collect();
    assert_eq!(lane[0], live[0], "the op in flight keeps the head");
    assert!(lane.contains(&early_id));
    // The next leader, after a crash, restores the same order from what was stored.
    let mut records: Vec<OpRecord> = all.into_iter().filter(|r| r.id != mark[0].id).collect();
    records.push(mark.pop().unwrap());
    records.push(early);
    let next = Engine::restore(cfg, 3, records, 5).unwrap();
    let next: Vec<OpId> = next.ops_for("todos", "a").iter().map(|r| r.id).collect();
    assert_eq!(next, lane);
    assert_eq!(
        leader.op(live[0]).unwrap().state,
        OpState::Inflight,
        "still in flight in the leader"
    );
}

/// A follower never marks the clock (that is the leader's write), so the mark must not be a wake-up it
/// waits for: once due, it would stay due, and a runtime that re-arms its timer from `next_wake` after
/// every tick would spin. Found by the simulator's multi-tab mode.
#[test]
fn a_follower_holding_ops_asks_for_no_wake_up_in_the_past() {
    let mut follower = Engine::new(config(ConflictStrategy::Manual, false), 1).unwrap();
    follower.set_passive(true);
    let (id, _) = follower.enqueue(put("a", json!(1)), 0).unwrap();
    follower.confirm_stored(&[id], 1);
    for now in [2, 3_600_000, 7_200_000, 100 * 3_600_000] {
        follower.tick(now);
        if let Some(at) = follower.next_wake() {
            assert!(at > now, "a wake-up at {at}, due already at {now}");
        }
    }
    // The leader does mark the clock, and its next mark is ahead of it.
    let mut leader = Engine::new(config(ConflictStrategy::Manual, false), 2).unwrap();
    leader.pause(0);
    let _ = enqueue(&mut leader, put("a", json!(1)), 0);
    let fx = leader.tick(3_600_000);
    assert!(fx.iter().any(|f| matches!(f, Effect::PersistClock(_))));
    assert!(leader.next_wake().unwrap() > 3_600_000);
}

/// The "one user conflicts with themself across two tabs": tab B makes an op on the state the
/// leader's op started from, and the leader's op is acked before B's op reaches it. Queued behind it in
/// one tab, B's op would have moved to the version the ack produced; adopted after it, it must too, or
/// our own write comes back as a 412.
#[test]
fn an_op_made_on_the_state_an_acked_op_started_from_follows_that_ack() {
    let cfg = config(ConflictStrategy::Manual, true);
    let v1 = || outbox_core::ConfirmedDoc {
        collection: "todos".into(),
        key: "a".into(),
        version: Some("\"1\"".into()),
        doc: json!({ "v": 1 }).into(),
        deleted: false,
        acks: Vec::new(),
    };
    let mut leader = Engine::restore_with_docs(cfg.clone(), 1, vec![], vec![v1()], 0).unwrap();
    let mut follower = Engine::restore_with_docs(cfg.clone(), 2, vec![], vec![v1()], 0).unwrap();
    follower.set_passive(true);
    let (_, fx) = enqueue(&mut leader, put("a", json!({ "v": "leader" })), 1);
    let sent = only_send(&fx);
    assert_eq!(sent.ops[0].base_version.as_deref(), Some("\"1\""));
    // B saw the leader's op (seq 0) and made its own after it, on the same confirmed state.
    follower.adopt(stored(&fx), 1).unwrap();
    let (id, fx) = follower.enqueue(put("a", json!({ "v": "b" })), 2).unwrap();
    let record = stored(&fx).pop().unwrap();
    assert_eq!(record.base_version.as_deref(), Some("\"1\""));
    reply(
        &mut leader,
        &sent,
        Response::status(200).with_header("etag", "\"2\""),
        3,
    );

    let fx = leader.adopt(vec![record], 4).unwrap();
    let batch = only_send(&fx);
    assert_eq!(batch.ops[0].id, id);
    assert_eq!(
        batch.ops[0].base_version.as_deref(),
        Some("\"2\""),
        "made on the state our own ack replaced: it follows the ack"
    );
    let mark = stored(&fx).into_iter().rfind(|r| r.id == id).unwrap();
    assert_eq!(
        mark.base_version.as_deref(),
        Some("\"2\""),
        "stored before it is sent"
    );

    // Someone else's change since (a newer confirmed version) is a real conflict: no follow then.
    let mut leader = Engine::restore_with_docs(cfg.clone(), 3, vec![], vec![v1()], 0).unwrap();
    let (_, fx) = enqueue(&mut leader, put("a", json!({ "v": "leader" })), 1);
    reply(
        &mut leader,
        &only_send(&fx),
        Response::status(200).with_header("etag", "\"2\""),
        2,
    );
    let newer = outbox_core::ConfirmedDoc {
        version: Some("\"7\"".into()),
        ..v1()
    };
    leader.ingest(vec![newer], 3);
    let mut other = tab_records_versioned(&cfg, "a");
    other.seq = 5;
    let fx = leader.adopt(vec![other], 4).unwrap();
    assert_eq!(only_send(&fx).ops[0].base_version.as_deref(), Some("\"1\""));
}

/// One op made by a tab that knew version 1 of `todos/key`.
fn tab_records_versioned(cfg: &outbox_core::Config, key: &str) -> OpRecord {
    let doc = outbox_core::ConfirmedDoc {
        collection: "todos".into(),
        key: key.into(),
        version: Some("\"1\"".into()),
        doc: json!({ "v": 1 }).into(),
        deleted: false,
        acks: Vec::new(),
    };
    let mut tab = Engine::restore_with_docs(cfg.clone(), 9, vec![], vec![doc], 0).unwrap();
    tab.set_passive(true);
    let (_, fx) = tab.enqueue(put(key, json!({ "v": "other" })), 0).unwrap();
    stored(&fx).pop().unwrap()
}

/// The two gaps the simulator found (3 tabs seed 80, 2 tabs seed 27): an op made at the same moment as
/// ours on the same state, which sorts before it; and an op made before a chain of our own acks.
#[test]
fn an_adopted_op_follows_a_chain_of_our_acks_whatever_its_order() {
    let cfg = config(ConflictStrategy::Manual, true);
    let doc = |v: u32| outbox_core::ConfirmedDoc {
        collection: "todos".into(),
        key: "a".into(),
        version: Some(format!("\"{v}\"")),
        doc: json!({ "v": v }).into(),
        deleted: false,
        acks: Vec::new(),
    };
    let other_tab = |v: u32, seq: u64| {
        let mut tab = Engine::restore_with_docs(cfg.clone(), 9, vec![], vec![doc(v)], 0).unwrap();
        tab.set_passive(true);
        let (_, fx) = tab.enqueue(put("a", json!({ "v": "other" })), 0).unwrap();
        let mut record = stored(&fx).pop().unwrap();
        record.seq = seq;
        record
    };
    // (a) Ours has a higher seq and was acked first; theirs sorts before it.
    let mut leader = Engine::restore_with_docs(cfg.clone(), 1, vec![], vec![doc(1)], 0).unwrap();
    for _ in 0..5 {
        leader.enqueue(put("x", json!(0)), 0).unwrap();
    }
    let (_, fx) = enqueue(&mut leader, put("a", json!({ "v": "ours" })), 1);
    let sent = sends(&fx)
        .into_iter()
        .find(|b| b.ops.iter().any(|o| &*o.key == "a"))
        .unwrap();
    reply(
        &mut leader,
        &sent,
        Response::status(200).with_header("etag", "\"2\""),
        2,
    );
    let fx = leader.adopt(vec![other_tab(1, 0)], 3).unwrap();
    let theirs = sends(&fx)
        .into_iter()
        .flat_map(|b| b.ops)
        .find(|o| &*o.key == "a")
        .unwrap();
    assert_eq!(
        theirs.base_version.as_deref(),
        Some("\"2\""),
        "made at the same moment: follows ours"
    );

    // (b) Two of ours acked (2 -> 3, 3 -> 4) before theirs, made on 2, arrives.
    let mut leader = Engine::restore_with_docs(cfg.clone(), 2, vec![], vec![doc(2)], 0).unwrap();
    for (v, at) in [(3u32, 1u64), (4, 3)] {
        let (_, fx) = enqueue(&mut leader, put("a", json!({ "v": v })), at);
        let etag = format!("\"{v}\"");
        reply(
            &mut leader,
            &only_send(&fx),
            Response::status(200).with_header("etag", etag),
            at + 1,
        );
    }
    let fx = leader.adopt(vec![other_tab(2, 0)], 5).unwrap();
    assert_eq!(
        only_send(&fx).ops[0].base_version.as_deref(),
        Some("\"4\""),
        "follows the chain"
    );
}
