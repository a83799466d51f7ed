//! `outbox-sync`: the WebAssembly module behind the npm package.
//!
//! The engine's decisions live in [`outbox_core`], which has no I/O. This crate is the browser runtime that
//! carries out those decisions: IndexedDB storage (see [`store`]) and, as the runtime grows, the fetch
//! transport, timers and the exported JS classes (one module per class).

use wasm_bindgen::prelude::*;

pub mod store;

/// Runs once when the module is instantiated.
#[wasm_bindgen(start)]
fn start() {
    // Only with the `debug-panic-hook` feature: the hook pulls in panic formatting code that the size
    // budget of the release build cannot afford.
    #[cfg(feature = "debug-panic-hook")]
    console_error_panic_hook::set_once();
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
