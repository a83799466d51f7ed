//! Property: after any sequence of enqueue, ack, failure, conflict, lost response, pull, retry,
//! discard and crash-and-reopen, every entity's optimistic view equals the fold of its confirmed state
//! and its pending (not failed) ops, in lane order — computed here independently of the engine's own
//! incremental bookkeeping. Runs 1,000 cases by default; `OUTBOX_PROPTEST_CASES` raises it.
//! The status is checked against the ops at every step too (`support/status_rules.rs`), here under every
//! conflict strategy: a dropped op settles, a rebased one goes on.

use std::collections::HashMap;

use outbox_core::{
    Batch, BatchMark, CollectionConfig, Config, ConfirmedDoc, ConflictStrategy, Effect, Engine,
    Json, NewOp, OpId, OpKind, OpRecord, OpState, Reply, Response, Stored,
};
use proptest::prelude::*;
use serde_json::{json, Value};

#[path = "support/status_rules.rs"]
mod status_rules;

const KEYS: [&str; 3] = ["a", "b", "c"];
const WALL: u64 = 1_700_000_000_000;

#[derive(Clone, Debug)]
enum Action {
    Enqueue {
        key: usize,
        kind: u8,
        field: u8,
        value: i64,
    },
    Ack {
        with_doc: bool,
    },
    Fail,
    Conflict {
        version: u64,
    },
    Lost,
    Pull {
        key: usize,
        version: u64,
        deleted: bool,
        value: i64,
    },
    Tick {
        ms: u64,
    },
    Retry {
        pick: usize,
    },
    Discard {
        pick: usize,
    },
    Crash,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..3usize, 0..3u8, 0..3u8, -5..5i64)
            .prop_map(|(key, kind, field, value)| Action::Enqueue { key, kind, field, value }),
        3 => any::<bool>().prop_map(|with_doc| Action::Ack { with_doc }),
        1 => Just(Action::Fail),
        1 => (1..20u64).prop_map(|version| Action::Conflict { version }),
        1 => Just(Action::Lost),
        2 => (0..3usize, 1..20u64, any::<bool>(), -5..5i64)
            .prop_map(|(key, version, deleted, value)| Action::Pull { key, version, deleted, value }),
        2 => (0..5_000u64).prop_map(|ms| Action::Tick { ms }),
        1 => any::<usize>().prop_map(|pick| Action::Retry { pick }),
        1 => any::<usize>().prop_map(|pick| Action::Discard { pick }),
        1 => Just(Action::Crash),
    ]
}

fn strategy() -> impl Strategy<Value = ConflictStrategy> {
    prop_oneof![
        Just(ConflictStrategy::ServerWins),
        Just(ConflictStrategy::ClientWins),
        Just(ConflictStrategy::Manual),
    ]
}

/// The engine plus what its storage holds, applying effects as a runtime would.
struct Sim {
    engine: Engine,
    config: Config,
    records: HashMap<OpId, OpRecord>,
    docs: HashMap<String, ConfirmedDoc>,
    marks: HashMap<OpId, BatchMark>,
    in_flight: Vec<Batch>,
    now: u64,
    /// The time of the engine's last call (an action may call nothing): what its status is judged at.
    engine_now: u64,
    server_version: u64,
}

impl Sim {
    fn apply(&mut self, fx: Vec<Effect>) {
        self.engine_now = self.now;
        for effect in fx {
            match effect {
                Effect::Persist(r) => {
                    self.records.insert(r.id, r);
                }
                Effect::Delete(id) => {
                    self.records.remove(&id);
                }
                Effect::PersistDoc(d) => {
                    self.docs.insert(d.key.clone(), d);
                }
                Effect::PersistMark(m) => {
                    self.marks.insert(m.ops[0].0, m);
                }
                Effect::DeleteMark(first) => {
                    self.marks.remove(&first);
                }
                Effect::Send(b) => self.in_flight.push(b),
                Effect::ScheduleWake(_)
                | Effect::Emit(_)
                | Effect::PersistRetention(_)
                | Effect::PersistClock(_) => {}
            }
        }
    }

    fn reply(&mut self, response: impl Fn(&mut Sim) -> Response) {
        if self.in_flight.is_empty() {
            return;
        }
        let batch = self.in_flight.remove(0);
        let response = response(self);
        let fx = self
            .engine
            .on_reply(batch.id, &Reply::whole(response), self.now, WALL)
            .unwrap();
        self.apply(fx);
    }

    fn op_ids(&self) -> Vec<OpId> {
        let mut ops: Vec<&OpRecord> = self.engine.ops().collect();
        ops.sort_by_key(|r| r.seq);
        ops.into_iter().map(|r| r.id).collect()
    }
}

/// RFC 7396 applied by the test itself, op by op: the reference the engine's view must match.
fn reference_view(confirmed: Option<ConfirmedDoc>, ops: &[&OpRecord]) -> Option<Value> {
    let mut doc = confirmed.filter(|c| !c.deleted).map(|c| c.doc.value());
    for op in ops.iter().filter(|op| op.state != OpState::Failed) {
        doc = match &op.kind {
            OpKind::Put => Some(op.payload.value()),
            OpKind::Patch => {
                let mut d = doc.unwrap_or_else(|| json!({}));
                json_patch::merge(&mut d, &op.payload.value());
                Some(d)
            }
            OpKind::Delete => None,
            OpKind::Custom { .. } => doc,
        };
    }
    doc
}

fn check_view(engine: &Engine) -> Result<(), TestCaseError> {
    for key in KEYS {
        let ops = engine.ops_for("notes", key);
        let expected = reference_view(engine.confirmed("notes", key), &ops);
        let actual = engine
            .view_item("notes", key)
            .and_then(|i| i.value.map(Json::value));
        prop_assert_eq!(&actual, &expected, "view of {} with ops {:?}", key, ops);
        let pending = ops.iter().filter(|o| o.state != OpState::Failed).count();
        let shown = engine.view_item("notes", key).map_or(0, |i| i.pending);
        prop_assert_eq!(shown, pending, "pending count of {}", key);
    }
    let listed: Vec<String> = engine
        .view_list("notes")
        .map(|i| i.key.to_owned())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    prop_assert_eq!(&listed, &sorted, "list is ordered by key");
    prop_assert!(engine.view_list("notes").all(|i| i.value.is_some()));
    Ok(())
}

fn cases() -> u32 {
    std::env::var("OUTBOX_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_view_is_always_confirmed_plus_pending(
        conflict in strategy(),
        versioned in any::<bool>(),
        max_ops in 1..4usize,
        seed in any::<u64>(),
        actions in prop::collection::vec(action(), 1..60),
    ) {
        let config = Config {
            max_ops,
            default_collection: CollectionConfig { conflict, versioned },
            ..Config::default()
        };
        let mut sim = Sim {
            engine: Engine::new(config.clone(), seed).unwrap(),
            config,
            records: HashMap::new(),
            docs: HashMap::new(),
            marks: HashMap::new(),
            in_flight: Vec::new(),
            now: 0,
            engine_now: 0,
            server_version: 100,
        };
        for action in actions {
            sim.now += 1;
            match action {
                Action::Enqueue { key, kind, field, value } => {
                    let (kind, payload) = match kind {
                        0 => (OpKind::Put, json!({ format!("f{field}"): value })),
                        1 => (OpKind::Patch, json!({ format!("f{field}"): if value == 0 { Value::Null } else { json!(value) } })),
                        _ => (OpKind::Delete, Value::Null),
                    };
                    let op = NewOp { collection: "notes".into(), key: KEYS[key].into(), kind, payload: payload.into(), base_version: None };
                    let (id, fx) = sim.engine.enqueue(op, sim.now).unwrap();
                    sim.apply(fx);
                    let fx = sim.engine.confirm_stored(&[id], sim.now);
                    sim.apply(fx);
                }
                Action::Ack { with_doc } => sim.reply(|s| {
                    s.server_version += 1;
                    let r = Response::status(200).with_header("ETag", format!("\"{}\"", s.server_version));
                    if with_doc { r.with_body(json!({ "server": s.server_version })) } else { r }
                }),
                Action::Fail => sim.reply(|_| Response::status(422)),
                Action::Conflict { version } => sim.reply(|_| Response::status(412).with_body(json!({
                    "type": "https://outbox-sync.dev/problems/version-conflict",
                    "current": { "etag": format!("\"{version}\""), "deleted": false, "doc": { "theirs": version } },
                }))),
                Action::Lost => {
                    if !sim.in_flight.is_empty() {
                        let batch = sim.in_flight.remove(0);
                        let fx = sim.engine.on_network_error(batch.id, sim.now).unwrap();
                        sim.apply(fx);
                    }
                }
                Action::Pull { key, version, deleted, value } => {
                    let doc = ConfirmedDoc {
                        collection: "notes".into(),
                        key: KEYS[key].into(),
                        version: Some(format!("\"{version}\"")),
                        doc: (if deleted { Value::Null } else { json!({ "pulled": value }) }).into(),
                        deleted,
                        acks: Vec::new(),
                    };
                    let fx = sim.engine.ingest(vec![doc], sim.now);
                    sim.apply(fx);
                }
                Action::Tick { ms } => {
                    sim.now += ms;
                    let fx = sim.engine.tick(sim.now);
                    sim.apply(fx);
                }
                Action::Retry { pick } => {
                    let ids = sim.op_ids();
                    if !ids.is_empty() {
                        if let Ok(fx) = sim.engine.retry(ids[pick % ids.len()], sim.now) {
                            sim.apply(fx);
                        }
                    }
                }
                Action::Discard { pick } => {
                    let ids = sim.op_ids();
                    if !ids.is_empty() {
                        if let Ok(fx) = sim.engine.discard(ids[pick % ids.len()], sim.now) {
                            sim.apply(fx);
                        }
                    }
                }
                Action::Crash => {
                    let before: Vec<Option<Value>> = KEYS
                        .iter()
                        .map(|k| sim.engine.view_item("notes", k).and_then(|i| i.value.map(Json::value)))
                        .collect();
                    let records = sim.records.values().cloned().collect();
                    let docs = sim.docs.values().cloned().collect();
                    let marks = sim.marks.values().cloned().collect();
                    let stored = Stored { records, docs, marks, ..Stored::default() };
                    sim.engine = Engine::restore_from(sim.config.clone(), seed ^ sim.now, stored, sim.now).unwrap();
                    sim.in_flight.clear();
                    let after: Vec<Option<Value>> = KEYS
                        .iter()
                        .map(|k| sim.engine.view_item("notes", k).and_then(|i| i.value.map(Json::value)))
                        .collect();
                    prop_assert_eq!(&after, &before, "the view survives a reload");
                    let fx = sim.engine.drain(sim.now);
                    sim.apply(fx);
                }
            }
            check_view(&sim.engine)?;
            let records: Vec<&OpRecord> = sim.engine.ops().collect();
            let switches = status_rules::Switches { paused: false, online: true };
            let checked =
                status_rules::check_status(&sim.engine.status(), &records, Some(sim.engine_now), &switches);
            prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
        }
    }
}

/// A number keeps the text it was written with through the view's merge patch. A document from the
/// server may hold a decimal written `0.10`, an integer past 2^53 or one past u64: parsed to a double
/// and written back, these would become `0.1`, `9007199254740992` and `1.2345678901234568e29`, and the
/// document the view shows and the runtime stores would no longer be the server's.
#[test]
fn a_merge_patch_keeps_each_number_as_it_was_written() {
    let server = outbox_core::Json::from_text(
        r#"{"price":0.10,"id":9007199254740993,"big":123456789012345678901234567890,"e":1e+2}"#
            .into(),
    )
    .unwrap();
    let patch = outbox_core::Json::from_text(r#"{"note":"x","n":[0.30,-0.0]}"#.into()).unwrap();
    let doc = outbox_core::view::merged(Some(&server), &patch);
    assert_eq!(
        doc.text(),
        r#"{"big":123456789012345678901234567890,"e":1e+2,"id":9007199254740993,"n":[0.30,-0.0],"note":"x","price":0.10}"#
    );
}
