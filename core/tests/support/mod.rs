//! Helpers shared by the engine's scenario tests (`exactly_once.rs`, `preconditions.rs`,
//! `pacing_and_clocks.rs`).
#![allow(dead_code)]

use outbox_core::{
    Batch, CollectionConfig, Config, ConflictStrategy, Effect, Engine, NewOp, OpId, OpKind,
    OpRecord, Reply, Response, RetryPolicy,
};
use serde_json::{json, Value};

pub const WALL: u64 = 1_700_000_000_000;
pub const HOUR: u64 = 3_600_000;

pub fn config(strategy: ConflictStrategy, versioned: bool) -> Config {
    Config {
        max_in_flight: 4,
        retry: RetryPolicy {
            base_ms: 1_000,
            cap_ms: 8_000,
            ..RetryPolicy::default()
        },
        default_collection: CollectionConfig {
            conflict: strategy,
            versioned,
        },
        ..Config::default()
    }
}

pub fn put(key: &str, payload: Value) -> NewOp {
    NewOp {
        collection: "todos".into(),
        key: key.into(),
        kind: OpKind::Put,
        payload: payload.into(),
        base_version: None,
    }
}

pub fn enqueue(e: &mut Engine, op: NewOp, now: u64) -> (OpId, Vec<Effect>) {
    let (id, mut fx) = e.enqueue(op, now).unwrap();
    fx.extend(e.confirm_stored(&[id], now));
    (id, fx)
}

pub fn sends(fx: &[Effect]) -> Vec<Batch> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::Send(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

pub fn only_send(fx: &[Effect]) -> Batch {
    let all = sends(fx);
    assert_eq!(all.len(), 1, "one send expected in {fx:#?}");
    all.into_iter().next().unwrap()
}

pub fn persisted(fx: &[Effect], id: OpId) -> Option<OpRecord> {
    fx.iter().rev().find_map(|f| match f {
        Effect::Persist(r) if r.id == id => Some(r.clone()),
        _ => None,
    })
}

pub fn reply(e: &mut Engine, batch: &Batch, response: Response, now: u64) -> Vec<Effect> {
    e.on_reply(batch.id, &Reply::whole(response), now, WALL)
        .unwrap()
}

pub fn conflict_412(version: u64, doc: Option<Value>) -> Response {
    let current = match doc {
        Some(doc) => {
            json!({ "version": version, "etag": format!("\"{version}\""), "deleted": false, "doc": doc })
        }
        None => {
            json!({ "version": version, "etag": format!("\"{version}\""), "deleted": true, "doc": null })
        }
    };
    Response::status(412).with_body(
        json!({ "type": "https://outbox-sync.dev/problems/version-conflict", "current": current }),
    )
}
