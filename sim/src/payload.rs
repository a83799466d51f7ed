//! Random JSON payloads: nested objects with doubles of every magnitude (the float round trip), long
//! strings, non-ASCII text, arrays, nulls.

use serde_json::{json, Map, Value};

/// An object payload (patches need one; puts get one too).
pub fn random(rng: &mut fastrand::Rng) -> Value {
    let mut map = Map::new();
    for i in 0..rng.usize(1..5) {
        map.insert(format!("f{i}"), value(rng, 2));
    }
    Value::Object(map)
}

fn value(rng: &mut fastrand::Rng, depth: u32) -> Value {
    match rng.u32(..8) {
        0 => Value::Null,
        1 => json!(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => {
            let x = f64::from_bits(rng.u64(..));
            json!(if x.is_finite() { x } else { rng.f64() })
        }
        4 => json!(rng.f64() * 10f64.powi(rng.i32(-12..12))),
        5 => json!(["é", "漢字", "🙂", "a\"b\\c", "\u{1}"][rng.usize(..5)].repeat(rng.usize(1..4))),
        6 if depth > 0 => {
            Value::Array((0..rng.usize(..4)).map(|_| value(rng, depth - 1)).collect())
        }
        7 if depth > 0 => {
            let mut map = Map::new();
            for i in 0..rng.usize(..3) {
                map.insert(format!("n{i}"), value(rng, depth - 1));
            }
            Value::Object(map)
        }
        _ => json!(rng.u32(..1000)),
    }
}
