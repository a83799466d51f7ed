//! `outbox-sync`: the WebAssembly module behind the npm package.
//!
//! The engine's decisions live in [`outbox_core`], which has no I/O. This crate is the browser runtime that
//! carries out those decisions, in the order the core's `EffectQueue` sets: IndexedDB storage (see
//! [`store`]), the fetch and custom transports, timers, the DOM triggers, and the exported JS classes.

use wasm_bindgen::prelude::*;

mod by_name;
mod clock;
mod convert;
pub mod error;
mod events;
mod monitoring;
mod option_names;
mod options;
mod outbox;
pub mod panic_guard;
mod pull;
mod runtime;
pub mod store;
mod transport;
mod watchers;

pub use error::SyncError;
pub use outbox::Outbox;

/// Runs once when the module is instantiated.
#[wasm_bindgen(start)]
fn start() {
    // Panics become SyncError { code: "INTERNAL" } (see panic_guard). With the `debug-panic-hook`
    // feature the hook also prints the Rust panic message to the console.
    panic_guard::install();
}

/// The version of the package, as built. The demo page shows it to prove the module loaded.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// The version of the sans-IO engine linked into this module.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    outbox_core::VERSION.to_owned()
}
