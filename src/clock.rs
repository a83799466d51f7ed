//! Time and randomness, the two inputs the core never produces itself.

use js_sys::{Reflect, Uint32Array};
use wasm_bindgen::JsCast;

/// The engine's clock, in milliseconds: `performance.timeOrigin + performance.now()`.
///
/// Monotonic within a page (it does not jump when the user changes the system clock) and continuous
/// across reloads (it is anchored to wall time at page load). That second property matters because the
/// core stores times in op records: a backoff deadline written before a reload must still mean the same
/// moment after it. It is also epoch milliseconds, so `blockedUntil` and friends are usable as dates.
pub fn now() -> u64 {
    let global = js_sys::global();
    match Reflect::get(&global, &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
    {
        Some(performance) => (performance.time_origin() + performance.now()) as u64,
        None => wall_now(),
    }
}

/// Wall-clock time (`Date.now()`), used only to judge HTTP dates such as `Retry-After`.
pub fn wall_now() -> u64 {
    js_sys::Date::now() as u64
}

/// A fresh 64-bit seed for the engine's jitter and UUIDs, from `crypto.getRandomValues`.
///
/// Must differ every session: the engine derives idempotency keys from it, and a repeated seed would
/// repeat keys of ops the server has already applied.
pub fn random_seed() -> u64 {
    let words = Uint32Array::new_with_length(2);
    let filled = Reflect::get(&js_sys::global(), &"crypto".into())
        .ok()
        .filter(|c| c.is_object())
        .and_then(|crypto| {
            let get_random_values: js_sys::Function =
                Reflect::get(&crypto, &"getRandomValues".into())
                    .ok()?
                    .dyn_into()
                    .ok()?;
            get_random_values.call1(&crypto, &words).ok()
        })
        .is_some();
    if filled {
        (u64::from(words.get_index(0)) << 32) | u64::from(words.get_index(1))
    } else {
        // No Web Crypto (a very old or unusual host): fall back to Math.random, which is unique enough
        // per session for keys scoped to one client.
        let hi = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
        let lo = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
        (hi << 32) | lo ^ (now() & 0xffff_ffff)
    }
}
