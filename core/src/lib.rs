//! `outbox-core`: the sans-IO engine behind outbox-sync.
//!
//! This crate has no I/O and no dependency on wasm-bindgen, web-sys or js-sys. Time and randomness are
//! inputs, so the whole engine can be driven deterministically by native tests and simulators.
//!
//! # Driving the engine
//! Every command and observation is a method on [`Engine`] that takes the time and returns a list of
//! [`Effect`]s. The runtime runs them in order and does nothing else:
//!
//! ```
//! use outbox_core::{Config, Effect, Engine, NewOp, OpKind, Reply, Response};
//! use serde_json::json;
//!
//! let mut engine = Engine::new(Config::default(), 42).unwrap();
//! let (id, effects) = engine
//!     .enqueue(NewOp { collection: "todos".into(), key: "1".into(), kind: OpKind::Put,
//!                      payload: json!({ "title": "milk" }).into(), base_version: None }, 0)
//!     .unwrap();
//! assert!(matches!(effects[0], Effect::Persist(_)));       // commit it, then:
//! let effects = engine.confirm_stored(&[id], 1);           // now it may be sent
//! let batch = effects.iter().find_map(|e| match e { Effect::Send(b) => Some(b.clone()), _ => None }).unwrap();
//! // ... the transport sends `batch` and reports back:
//! let effects = engine.on_reply(batch.id, &Reply::whole(Response::status(200)), 2, 1_700_000_000_000).unwrap();
//! assert!(effects.contains(&Effect::Delete(id)));
//! ```
//!
//! The runtime loop is therefore: call a method, hand its effects to an [`EffectQueue`], commit the
//! storage writes it groups (one transaction per group, in order), start each `Send` it releases once
//! the writes before it are durable, keep one timer for the latest `ScheduleWake`, and forward `Emit`s
//! to the app. See `README.md` for the op lifecycle.

#![warn(missing_docs)]

mod config;
mod effect;
mod effect_queue;
mod engine;
mod error;
mod event;
pub mod health;
pub mod history;
mod json;
mod lane;
mod mark;
mod op;
mod op_table;
pub mod order;
pub mod outcome;
mod random;
pub mod rate_limit;
mod response;
pub mod retry;
mod status;
pub mod view;

pub use config::{CollectionConfig, Config, ConflictStrategy};
pub use effect::{Batch, Effect, SendOp};
pub use effect_queue::{
    Accepted, Committed, EffectQueue, Group, Write, CLOCK_META_KEY, RETENTION_META_KEY,
};
pub use engine::{Engine, Restoring, Stored, StoredMeta};
pub use error::CoreError;
pub use event::{ConflictResolution, Event};
pub use health::{health, Alert, Health, HealthConfig, HealthInputs};
pub use history::{
    Answer, Attempt, History, HistoryBounds, HistoryEntry, HistoryKind, HistoryQuery, Outcome,
    RateLimitSeen, Trigger,
};
pub use json::Json;
pub use mark::{BatchMark, MarkedOp, MARK_META_PREFIX};
pub use op::{
    payload_depth, NewOp, OpError, OpId, OpKind, OpRecord, OpState, FORMAT_VERSION,
    MAX_PAYLOAD_DEPTH,
};
pub use outcome::{classify, OutcomeClass, Rule, DEFAULT_RULES, KEY_IN_FLIGHT_PROBLEM_TYPE};
pub use random::{Entropy, Randomness};
pub use rate_limit::RateLimitInfo;
pub use response::{OpResult, Reply, Response};
pub use retry::RetryPolicy;
pub use status::{Progress, Status, StorageError, SyncState};
pub use view::{AckLink, ConfirmedDoc, ViewItem};

/// The version of the engine, reported by the wasm module and the demo page.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
