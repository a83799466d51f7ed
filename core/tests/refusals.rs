//! Answers a misbehaving server or proxy gives, and what the engine makes of them: a push refused as a
//! whole fails no op for it, weak or malformed ETags never become preconditions, a 412 without the
//! server's state drops nothing, and a payload too deep to read back is refused at enqueue.

mod support;

use outbox_core::{
    Batch, Config, ConflictStrategy, CoreError, Engine, OpResult, OpState, Reply, Response,
    MAX_PAYLOAD_DEPTH,
};
use serde_json::{json, Value};
use support::*;

fn push_config() -> Config {
    Config {
        max_ops: 50,
        max_in_flight: 1,
        ..config(ConflictStrategy::ServerWins, false)
    }
}

fn acks(batch: &Batch) -> Reply {
    Reply::per_op(
        batch
            .ops
            .iter()
            .map(|o| OpResult {
                id: o.id,
                response: Response::status(200).with_header("ETag", "\"1\""),
            })
            .collect(),
    )
}

#[test]
fn a_push_with_too_many_ops_is_split_to_the_servers_limit_and_nothing_fails() {
    let mut e = Engine::new(push_config(), 1).unwrap();
    let ids: Vec<_> = (0..30)
        .map(|i| e.enqueue(put(&i.to_string(), json!(i)), 0).unwrap().0)
        .collect();
    let batch = only_send(&e.confirm_stored(&ids, 0));
    assert_eq!(batch.ops.len(), 30);
    let refused = Response::status(413).with_body(json!({
        "type": "https://outbox-sync.dev/problems/batch-too-large", "maxOps": 8
    }));
    let mut fx = e
        .on_reply(batch.id, &Reply::whole(refused), 1, WALL)
        .unwrap();
    let mut acked = 0;
    let mut now = 2;
    while let Some(batch) = sends(&fx).into_iter().next() {
        assert!(batch.ops.len() <= 8, "the server's limit is kept");
        acked += batch.ops.len();
        fx = e.on_reply(batch.id, &acks(&batch), now, WALL).unwrap();
        now += 1;
    }
    assert_eq!(acked, 30);
    assert_eq!(e.status().failed, 0);
    assert!(e.ops().next().is_none());
}

#[test]
fn a_push_refused_as_a_whole_fails_only_the_op_that_causes_it() {
    let mut e = Engine::new(push_config(), 2).unwrap();
    let ids: Vec<_> = (0..6)
        .map(|i| {
            let value = if i == 3 {
                json!({"poison": true})
            } else {
                json!(i)
            };
            e.enqueue(put(&i.to_string(), value), 0).unwrap().0
        })
        .collect();
    let batch = only_send(&e.confirm_stored(&ids, 0));
    assert_eq!(batch.ops.len(), 6);
    let refused = Response::status(400).with_body(json!({
        "type": "https://outbox-sync.dev/problems/malformed-json"
    }));
    let mut fx = e
        .on_reply(batch.id, &Reply::whole(refused.clone()), 1, WALL)
        .unwrap();
    assert_eq!(e.status().failed, 0, "no op failed for the batch's answer");
    let mut now = 2;
    while let Some(batch) = sends(&fx).into_iter().next() {
        assert_eq!(batch.ops.len(), 1, "each op alone, to find the guilty one");
        let guilty = batch.ops[0].payload.value() == json!({"poison": true});
        let reply = if guilty {
            Reply::whole(refused.clone())
        } else {
            acks(&batch)
        };
        fx = e.on_reply(batch.id, &reply, now, WALL).unwrap();
        now += 1;
    }
    let status = e.status();
    assert_eq!((status.failed, status.pending), (1, 0));
    let failed: Vec<_> = e.ops().collect();
    assert_eq!(failed[0].payload.value(), json!({"poison": true}));
}

#[test]
fn a_weak_or_malformed_etag_never_becomes_if_match() {
    for etag in ["W/\"5\"", "abc"] {
        let mut e = Engine::new(config(ConflictStrategy::ServerWins, true), 3).unwrap();
        let (_, fx) = enqueue(&mut e, put("a", json!(1)), 0);
        reply(
            &mut e,
            &only_send(&fx),
            Response::status(201).with_header("ETag", etag),
            1,
        );
        let (_, fx) = enqueue(&mut e, put("a", json!(2)), 2);
        let batch = only_send(&fx);
        assert_eq!(
            batch.ops[0].base_version, None,
            "{etag}: If-Match never matches it"
        );
        assert!(!batch.ops[0].create_only, "{etag}: the document exists");
    }
}

#[test]
fn a_412_without_the_servers_state_holds_the_op_even_under_server_wins() {
    for body in [
        None,
        Some(json!({"current": "garbage"})),
        Some(json!("<html>")),
    ] {
        let mut e = Engine::new(config(ConflictStrategy::ServerWins, true), 4).unwrap();
        let (id, fx) = enqueue(&mut e, put("a", json!(2)), 1);
        let mut response = Response::status(412);
        if let Some(body) = body.clone() {
            response = response.with_body(body);
        }
        reply(&mut e, &only_send(&fx), response, 2);
        let record = e.op(id).expect("never dropped without evidence");
        assert_eq!(record.state, OpState::Conflict, "{body:?}");
    }
}

#[test]
fn a_payload_too_deep_to_read_back_is_refused_at_enqueue() {
    let mut e = Engine::new(config(ConflictStrategy::Manual, false), 5).unwrap();
    let nest = |depth: usize| (0..depth).fold(Value::Null, |v, _| json!([v]));
    assert!(e.enqueue(put("ok", nest(MAX_PAYLOAD_DEPTH)), 0).is_ok());
    let err = e
        .enqueue(put("deep", nest(MAX_PAYLOAD_DEPTH + 1)), 0)
        .unwrap_err();
    assert_eq!(err, CoreError::TooDeep(MAX_PAYLOAD_DEPTH + 1));
    // What was accepted reads back from its stored text.
    let (id, fx) = e.enqueue(put("ok2", nest(MAX_PAYLOAD_DEPTH)), 0).unwrap();
    let text = serde_json::to_string(&persisted(&fx, id).unwrap()).unwrap();
    assert!(serde_json::from_str::<outbox_core::OpRecord>(&text).is_ok());
}
