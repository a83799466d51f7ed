//! Time and randomness, the two inputs the core never produces itself.

use js_sys::{Reflect, Uint8Array};
use outbox_core::{Entropy, Randomness};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;

/// The engine's clock, in milliseconds: `performance.timeOrigin + performance.now()`.
///
/// Monotonic within a page (it does not jump when the user changes the system clock) and continuous
/// across reloads (it is anchored to wall time at page load). That second property matters because the
/// core stores times in op records: a backoff deadline written before a reload must still mean the same
/// moment after it. It is also epoch milliseconds, so `blockedUntil` and friends are usable as dates.
pub fn now() -> u64 {
    // Looked up once per page: `now()` runs several times per op, and the lookup alone (a global, a
    // property by name, a type check, `timeOrigin`) cost more boundary crossings than the reading.
    thread_local! {
        static PERFORMANCE: Option<(web_sys::Performance, f64)> = {
            Reflect::get(&js_sys::global(), &"performance".into())
                .ok()
                .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
                .map(|p| {
                    let origin = p.time_origin();
                    (p, origin)
                })
        };
    }
    PERFORMANCE.with(|p| match p {
        Some((performance, origin)) => (origin + performance.now()) as u64,
        None => wall_now(),
    })
}

/// Wall-clock time (`Date.now()`), used only to judge HTTP dates such as `Retry-After`.
pub fn wall_now() -> u64 {
    js_sys::Date::now() as u64
}

/// The engine's randomness: `crypto.getRandomValues`, so every idempotency key carries 122 random bits.
/// Only a host without Web Crypto (none that runs this module is known) falls back to a seed.
pub fn randomness() -> Randomness {
    match CryptoEntropy::new() {
        Some(source) => Randomness::Source(Box::new(source)),
        None => Randomness::Seeded(fallback_seed()),
    }
}

/// `crypto.getRandomValues`, drawn a pool at a time: one call into JS per 256 UUIDs, not per key.
struct CryptoEntropy {
    crypto: JsValue,
    get_random_values: js_sys::Function,
    pool: Vec<u8>,
}

/// Bytes fetched per call: 256 UUIDs (an op takes two), well under the 65,536 `getRandomValues` allows.
const POOL_BYTES: u32 = 4096;

impl CryptoEntropy {
    fn new() -> Option<CryptoEntropy> {
        let crypto = Reflect::get(&js_sys::global(), &"crypto".into())
            .ok()
            .filter(|c| c.is_object())?;
        let get_random_values = Reflect::get(&crypto, &"getRandomValues".into())
            .ok()?
            .dyn_into()
            .ok()?;
        Some(CryptoEntropy {
            crypto,
            get_random_values,
            pool: Vec::new(),
        })
    }

    fn refill(&mut self) {
        let array = Uint8Array::new_with_length(POOL_BYTES);
        if self.get_random_values.call1(&self.crypto, &array).is_err() {
            // Web Crypto refused (it never does for this size): a key must still be unique.
            self.pool.extend(fallback_seed().to_le_bytes());
            return;
        }
        // Consumed from the end: reversed, so bytes come out in the order crypto produced them.
        let mut bytes = array.to_vec();
        bytes.reverse();
        self.pool.extend(bytes);
    }
}

impl Entropy for CryptoEntropy {
    fn fill(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            if self.pool.is_empty() {
                self.refill();
            }
            *b = self.pool.pop().expect("refilled above");
        }
    }
}

/// A seed from `Math.random` and the clock, for a host without Web Crypto.
fn fallback_seed() -> u64 {
    let hi = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    let lo = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    (hi << 32) | lo ^ (now() & 0xffff_ffff)
}
