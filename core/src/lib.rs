//! `outbox-core`: the sans-IO engine behind outbox-sync.
//!
//! This crate has no I/O and no dependency on wasm-bindgen, web-sys or js-sys. Time and randomness are
//! inputs, so the whole engine can be driven deterministically by native tests and simulators.

/// The version of the engine, reported by the wasm module and the demo page.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
