//! How ready ops are grouped into pushes: `max_bytes` counts the payload that will be sent, including
//! one an app's resolution put in place of the op's first payload (an op is sized when a batch first
//! needs it, not at enqueue or restore, so a stale size is the risk this guards against).

mod support;

use outbox_core::{Config, ConflictStrategy, Engine, OpState};
use serde_json::json;
use support::*;

fn bytes_config() -> Config {
    Config {
        max_ops: 10,
        max_in_flight: 1,
        // Two small ops (about 140 bytes each on the wire) fit; a kilobyte payload goes alone.
        max_bytes: 300,
        ..config(ConflictStrategy::Manual, true)
    }
}

#[test]
fn a_resolution_that_grows_the_payload_is_sized_again_before_it_is_batched() {
    let mut e = Engine::new(bytes_config(), 3).unwrap();
    let (a, fx) = enqueue(&mut e, put("a", json!(1)), 0);
    let batch = only_send(&fx);
    let fx = reply(&mut e, &batch, conflict_412(5, Some(json!(0))), 1);
    assert!(sends(&fx).is_empty());
    assert_eq!(e.op(a).unwrap().state, OpState::Conflict);

    // While paused, the small op is resolved with a big payload and two small ops join it.
    e.pause(2);
    e.resolve(a, json!({ "blob": "x".repeat(1_000) }).into(), None, 3)
        .unwrap();
    let (b, _) = enqueue(&mut e, put("b", json!(2)), 4);
    let (c, _) = enqueue(&mut e, put("c", json!(3)), 5);

    let first = only_send(&e.resume(6));
    let ids: Vec<_> = first.ops.iter().map(|o| o.id).collect();
    assert_eq!(
        ids,
        vec![a],
        "the resolved op is over max_bytes with anything else"
    );
    let next = sends(&reply(
        &mut e,
        &first,
        outbox_core::Response::status(200).with_header("ETag", "\"6\""),
        7,
    ));
    let ids: Vec<_> = next[0].ops.iter().map(|o| o.id).collect();
    assert_eq!(ids, vec![b, c], "two small ops share a push");
}
