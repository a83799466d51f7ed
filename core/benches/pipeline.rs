//! Per-op cost of enqueue -> batch -> ack with 1k, 10k and 100k ops queued.
//!
//! The engine is filled with `n` committed ops (distinct entities), then each iteration enqueues and
//! commits one batch worth of new ops and acks the oldest batch in flight (which sends the next one),
//! so the queue stays at `n`. divan reports time per op (`ItemsCount`).
//!
//! Acceptance: per-op cost at 100k within 1.5x of 1k, i.e. no O(n) scan per op. Every send reads an op
//! written `n` ops earlier, so at 100k part of the difference is cache misses, not the engine's
//! algorithms; the op layout (slab, slim lane slots, shared payloads) keeps those few.
//!
//! Run: `cargo bench -p outbox-core`.

use std::collections::VecDeque;

use divan::counter::ItemsCount;
use divan::Bencher;
use outbox_core::{Config, Effect, Engine, NewOp, OpKind, Reply, Response};
use serde_json::json;

const BATCH: usize = 50;

fn main() {
    divan::main();
}

struct Pipeline {
    engine: Engine,
    in_flight: VecDeque<u64>,
    next_key: usize,
    lanes: usize,
    now: u64,
}

impl Pipeline {
    fn filled(n: usize) -> Pipeline {
        let mut p = Pipeline::empty(n);
        for _ in 0..n / BATCH {
            p.enqueue_batch();
        }
        p
    }

    fn empty(n: usize) -> Pipeline {
        let config = Config {
            max_ops: BATCH,
            max_in_flight: 2,
            ..Config::default()
        };
        Pipeline {
            engine: Engine::new(config, 7).unwrap(),
            in_flight: VecDeque::new(),
            next_key: 0,
            lanes: n,
            now: 0,
        }
    }

    fn track(&mut self, fx: Vec<Effect>) {
        for f in fx {
            if let Effect::Send(b) = f {
                self.in_flight.push_back(b.id);
            }
        }
    }

    fn enqueue_batch(&mut self) {
        self.now += 1;
        let mut ids = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let key = (self.next_key % self.lanes).to_string();
            self.next_key += 1;
            let op = NewOp {
                collection: "todos".into(),
                key,
                kind: OpKind::Put,
                payload: json!({ "title": "buy milk", "done": false }).into(),
                base_version: None,
            };
            let (id, fx) = self.engine.enqueue(op, self.now).unwrap();
            divan::black_box(fx);
            ids.push(id);
        }
        let fx = self.engine.confirm_stored(&ids, self.now);
        self.track(fx);
    }

    fn ack_oldest(&mut self) {
        let batch = self.in_flight.pop_front().expect("a batch is in flight");
        let reply = Reply::whole(Response::status(200));
        let fx = self
            .engine
            .on_reply(batch, &reply, self.now, 1_700_000_000_000)
            .unwrap();
        self.track(fx);
    }
}

#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 50, sample_size = 20)]
fn steady_state(bencher: Bencher, n: usize) {
    let mut p = Pipeline::filled(n);
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        p.enqueue_batch();
        p.ack_oldest();
    });
    assert!(p.engine.status().pending + p.engine.status().in_flight >= n);
}
