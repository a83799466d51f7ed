//! The optimistic view and conflict strategies, scenario by scenario. (The property that the view is
//! always "confirmed + pending" under random sequences is in tests/view_model.rs.)

use serde_json::{json, Value};

use super::*;
use crate::config::CollectionConfig;
use crate::response::Response;

const WALL: u64 = 1_700_000_000_000;

fn engine(conflict: ConflictStrategy) -> Engine {
    let config = Config {
        default_collection: CollectionConfig {
            conflict,
            versioned: true,
        },
        ..Config::default()
    };
    Engine::new(config, 7).unwrap()
}

fn new_op(key: &str, kind: OpKind, payload: Value) -> NewOp {
    NewOp {
        collection: "notes".into(),
        key: key.into(),
        kind,
        payload: payload.into(),
        base_version: None,
    }
}

fn value(e: &Engine, key: &str) -> Option<Value> {
    e.view_item("notes", key)
        .and_then(|i| i.value.map(Json::value))
}

fn add(e: &mut Engine, op: NewOp, now: u64) -> (OpId, Vec<Effect>) {
    let (id, _) = e.enqueue(op, now).unwrap();
    (id, e.confirm_stored(&[id], now))
}

fn batch(fx: &[Effect]) -> Batch {
    fx.iter()
        .find_map(|f| match f {
            Effect::Send(b) => Some(b.clone()),
            _ => None,
        })
        .expect("a batch was sent")
}

fn answer(e: &mut Engine, b: &Batch, response: Response, now: u64) -> Vec<Effect> {
    e.on_reply(b.id, &Reply::whole(response), now, WALL)
        .unwrap()
}

fn view_changes(fx: &[Effect]) -> usize {
    fx.iter()
        .filter(|f| matches!(f, Effect::Emit(Event::ViewChanged { .. })))
        .count()
}

fn conflict_412(version: u64, doc: Value) -> Response {
    Response::status(412).with_body(json!({
        "type": "https://outbox-sync.dev/problems/version-conflict",
        "title": "Version conflict",
        "current": { "version": version, "etag": format!("\"{version}\""), "deleted": false, "doc": doc },
    }))
}

fn ingest(e: &mut Engine, key: &str, version: u64, doc: Option<Value>, now: u64) -> Vec<Effect> {
    e.ingest(
        vec![ConfirmedDoc {
            collection: "notes".into(),
            key: key.into(),
            version: Some(format!("\"{version}\"")),
            deleted: doc.is_none(),
            doc: doc.unwrap_or(Value::Null).into(),
            acks: Vec::new(),
        }],
        now,
    )
}

#[test]
fn put_patch_and_delete_show_at_once_in_order() {
    let mut e = engine(ConflictStrategy::ServerWins);
    e.set_online(false, 0);
    let (_, fx) = e
        .enqueue(
            new_op("a", OpKind::Put, json!({"title": "x", "tags": ["t"]})),
            1,
        )
        .unwrap();
    assert_eq!(view_changes(&fx), 1, "one enqueue, one view change");
    e.enqueue(
        new_op("a", OpKind::Patch, json!({"title": null, "done": true})),
        2,
    )
    .unwrap();
    assert_eq!(value(&e, "a"), Some(json!({"tags": ["t"], "done": true})));
    assert_eq!(e.view_item("notes", "a").unwrap().pending, 2);
    e.enqueue(new_op("a", OpKind::Delete, Value::Null), 3)
        .unwrap();
    assert_eq!(value(&e, "a"), None);
    assert_eq!(
        e.view_list("notes").count(),
        0,
        "a deleted doc is not listed"
    );
}

#[test]
fn an_ack_confirms_the_servers_doc_and_later_ops_follow_its_version() {
    let mut e = engine(ConflictStrategy::Manual);
    ingest(&mut e, "a", 3, Some(json!({"n": 0})), 0);
    let (first, fx) = add(&mut e, new_op("a", OpKind::Patch, json!({"n": 1})), 1);
    let (second, _) = add(&mut e, new_op("a", OpKind::Patch, json!({"m": 2})), 2);
    assert_eq!(
        e.op(first).unwrap().base_version.as_deref(),
        Some("\"3\""),
        "the version the user saw"
    );
    assert_eq!(e.op(second).unwrap().base_version.as_deref(), Some("\"3\""));
    let b = batch(&fx);
    let fx = answer(
        &mut e,
        &b,
        Response::status(200)
            .with_header("ETag", "\"4\"")
            .with_body(json!({"n": 1, "server": true})),
        3,
    );
    assert!(fx
        .iter()
        .any(|f| matches!(f, Effect::PersistDoc(d) if d.version.as_deref() == Some("\"4\""))));
    assert_eq!(
        e.confirmed("notes", "a").unwrap().doc.value(),
        json!({"n": 1, "server": true})
    );
    assert_eq!(
        e.op(second).unwrap().base_version.as_deref(),
        Some("\"4\""),
        "our own previous write must not look like a conflict"
    );
    // The view is the server's doc with the remaining op on top.
    assert_eq!(
        value(&e, "a"),
        Some(json!({"n": 1, "server": true, "m": 2}))
    );
}

#[test]
fn a_permanent_failure_rolls_the_op_back_out_of_the_view() {
    let mut e = engine(ConflictStrategy::ServerWins);
    ingest(&mut e, "a", 1, Some(json!({"title": "old"})), 0);
    let (id, fx) = add(&mut e, new_op("a", OpKind::Put, json!({"title": "bad"})), 1);
    assert_eq!(value(&e, "a"), Some(json!({"title": "bad"})));
    let fx = answer(&mut e, &batch(&fx), Response::status(422), 2);
    assert_eq!(value(&e, "a"), Some(json!({"title": "old"})));
    assert_eq!(view_changes(&fx), 1);
    // Retrying puts it back in the view.
    e.retry(id, 3).unwrap();
    assert_eq!(value(&e, "a"), Some(json!({"title": "bad"})));
}

#[test]
fn server_wins_drops_the_op_and_shows_the_server_doc() {
    let mut e = engine(ConflictStrategy::ServerWins);
    ingest(&mut e, "a", 1, Some(json!({"title": "old"})), 0);
    let (id, fx) = add(
        &mut e,
        new_op("a", OpKind::Put, json!({"title": "mine"})),
        1,
    );
    let fx = answer(
        &mut e,
        &batch(&fx),
        conflict_412(5, json!({"title": "theirs"})),
        2,
    );
    assert!(e.op(id).is_none(), "dropped");
    assert!(fx.contains(&Effect::Delete(id)));
    assert!(fx.iter().any(|f| matches!(f,
        Effect::Emit(Event::Conflict { resolution: ConflictResolution::Dropped, server_version: Some(v), .. }) if v == "\"5\"")));
    assert_eq!(value(&e, "a"), Some(json!({"title": "theirs"})));
    assert_eq!(e.status().conflicts, 0);
}

#[test]
fn client_wins_rebases_once_under_the_same_key_and_holds_if_the_server_does_not_move() {
    let mut e = engine(ConflictStrategy::ClientWins);
    ingest(&mut e, "a", 1, Some(json!({"title": "old"})), 0);
    let (id, fx) = add(
        &mut e,
        new_op("a", OpKind::Put, json!({"title": "mine"})),
        1,
    );
    let key = e.op(id).unwrap().idempotency_key;
    let fx = answer(
        &mut e,
        &batch(&fx),
        conflict_412(5, json!({"title": "theirs"})),
        2,
    );
    let resent = batch(&fx);
    assert_eq!(
        resent.ops[0].base_version.as_deref(),
        Some("\"5\""),
        "rebased on the server version"
    );
    // Nothing was applied under the key (the server would have replayed it) and errors are not
    // recorded against keys: the rebased op stays one request, even if another copy of it is out.
    assert_eq!(resent.ops[0].idempotency_key, key, "the same key");
    assert_eq!(
        value(&e, "a"),
        Some(json!({"title": "mine"})),
        "the local change stands"
    );
    // The server answers with the version we already rebased on: holding beats looping.
    answer(
        &mut e,
        &resent,
        conflict_412(5, json!({"title": "theirs"})),
        3,
    );
    assert_eq!(e.op(id).unwrap().state, OpState::Conflict);
}

#[test]
fn manual_holds_both_versions_until_resolved() {
    let mut e = engine(ConflictStrategy::Manual);
    let (id, fx) = add(
        &mut e,
        new_op("a", OpKind::Put, json!({"title": "mine"})),
        1,
    );
    answer(
        &mut e,
        &batch(&fx),
        conflict_412(5, json!({"title": "theirs"})),
        2,
    );
    let held = e.op(id).unwrap();
    assert_eq!(held.state, OpState::Conflict);
    assert_eq!(held.server_doc, Some(json!({"title": "theirs"})));
    assert_eq!(held.server_version.as_deref(), Some("\"5\""));
    assert_eq!(
        e.confirmed("notes", "a").unwrap().doc.value(),
        json!({"title": "theirs"})
    );
    assert_eq!(
        value(&e, "a"),
        Some(json!({"title": "mine"})),
        "the user's change stays visible"
    );
    // Resolving with a merge sends the merged doc against the server's version.
    let fx = e
        .resolve(
            id,
            json!({"title": "merged"}).into(),
            Some("\"5\"".into()),
            3,
        )
        .unwrap();
    assert_eq!(batch(&fx).ops[0].base_version.as_deref(), Some("\"5\""));
    assert_eq!(value(&e, "a"), Some(json!({"title": "merged"})));
}

#[test]
fn pull_applies_only_newer_versions_and_rebases_pending_ops() {
    let mut e = engine(ConflictStrategy::Manual);
    e.set_online(false, 0);
    ingest(&mut e, "a", 2, Some(json!({"a": 1})), 0);
    e.enqueue(new_op("a", OpKind::Patch, json!({"mine": true})), 1)
        .unwrap();
    let fx = ingest(&mut e, "a", 3, Some(json!({"a": 2})), 2);
    assert_eq!(view_changes(&fx), 1);
    assert_eq!(
        value(&e, "a"),
        Some(json!({"a": 2, "mine": true})),
        "rebased on the new version"
    );
    let fx = ingest(&mut e, "a", 1, Some(json!({"a": "stale"})), 3);
    assert_eq!(view_changes(&fx), 0, "an older version changes nothing");
    assert!(!fx.iter().any(|f| matches!(f, Effect::PersistDoc(_))));
    // A tombstone from the server deletes the confirmed doc; the pending patch recreates it locally.
    ingest(&mut e, "a", 4, None, 4);
    assert_eq!(value(&e, "a"), Some(json!({"mine": true})));
}

#[test]
fn restore_rebuilds_the_view_from_docs_and_ops() {
    let mut e = engine(ConflictStrategy::ServerWins);
    e.set_online(false, 0);
    let mut docs = Vec::new();
    for f in ingest(&mut e, "a", 2, Some(json!({"a": 1})), 0) {
        if let Effect::PersistDoc(d) = f {
            docs.push(d);
        }
    }
    let (_, fx) = e
        .enqueue(new_op("a", OpKind::Patch, json!({"b": 2})), 1)
        .unwrap();
    let records: Vec<OpRecord> = fx
        .into_iter()
        .filter_map(|f| match f {
            Effect::Persist(r) => Some(r),
            _ => None,
        })
        .collect();
    let before = value(&e, "a");
    let restored = Engine::restore_with_docs(Config::default(), 8, records, docs, 0).unwrap();
    assert_eq!(value(&restored, "a"), before);
    assert_eq!(before, Some(json!({"a": 1, "b": 2})));
}

#[test]
fn custom_ops_apply_through_the_mutator() {
    let mut e = engine(ConflictStrategy::ServerWins);
    e.set_online(false, 0);
    ingest(&mut e, "a", 1, Some(json!({"count": 1})), 0);
    let inc = NewOp {
        kind: OpKind::Custom {
            name: "increment".into(),
        },
        ..new_op("a", OpKind::Put, json!({"by": 2}))
    };
    e.enqueue(inc, 1).unwrap();
    assert_eq!(
        value(&e, "a"),
        Some(json!({"count": 1})),
        "no mutator: no change"
    );
    e.set_mutator(Box::new(|name, current, payload| {
        assert_eq!(name, "increment");
        let count =
            current?.value().get("count")?.as_i64()? + payload.value().get("by")?.as_i64()?;
        Some(json!({ "count": count }).into())
    }));
    let fx = e.refresh_view(2);
    assert_eq!(view_changes(&fx), 1);
    assert_eq!(value(&e, "a"), Some(json!({"count": 3})));
}

#[test]
fn a_429_on_a_pull_blocks_pushes_too() {
    let mut e = engine(ConflictStrategy::ServerWins);
    assert!(e.can_send());
    e.observe(
        &Response::status(429).with_header("Retry-After", "5"),
        10,
        WALL,
    );
    assert!(!e.can_send());
    assert_eq!(e.status().blocked_until, Some(5_010));
    let (_, fx) = add(&mut e, new_op("a", OpKind::Put, json!(1)), 20);
    assert!(!fx.iter().any(|f| matches!(f, Effect::Send(_))));
    e.tick(5_010);
    assert!(e.can_send());
}
