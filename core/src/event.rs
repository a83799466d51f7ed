//! Structured events, for the app's listeners and for logs.
//!
//! Events never carry secrets: auth headers are added by the runtime at send time and never reach the core.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::Json;
use crate::op::{OpError, OpId};
use crate::status::Status;

/// Something the app may want to know. Serialized as `{ "type": "acked", ... }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An op was accepted into the outbox (not yet durable: see [`crate::Engine::confirm_stored`]).
    Enqueued {
        /// The op.
        id: OpId,
        /// Its collection.
        collection: Arc<str>,
        /// Its key.
        key: Arc<str>,
    },
    /// A batch was handed to the transport.
    Sent {
        /// The batch.
        batch_id: u64,
        /// Its ops.
        ids: Vec<OpId>,
    },
    /// The server accepted an op.
    Acked {
        /// The op.
        id: OpId,
        /// Its collection.
        collection: Arc<str>,
        /// Its key.
        key: Arc<str>,
        /// The new version (`ETag`), when the server sent one.
        version: Option<String>,
        /// The confirmed document (shared with the view, not copied).
        doc: Option<Json>,
    },
    /// A transient failure: the op will be retried.
    RetryScheduled {
        /// The op.
        id: OpId,
        /// Attempts made so far.
        attempts: u32,
        /// Engine time of the next attempt.
        at: u64,
        /// Why.
        error: OpError,
    },
    /// The op was dead-lettered; its lane is halted.
    Failed {
        /// The op.
        id: OpId,
        /// Its collection.
        collection: Arc<str>,
        /// Its key.
        key: Arc<str>,
        /// Why.
        error: OpError,
    },
    /// The op met a newer server version. What happened next is `resolution`; only a `held` op
    /// halts its lane.
    Conflict {
        /// The op.
        id: OpId,
        /// Why.
        error: OpError,
        /// The server's current document, when sent.
        server_doc: Option<Value>,
        /// The server's current version, when sent.
        #[serde(default)]
        server_version: Option<String>,
        /// What the collection's strategy did with the op.
        resolution: ConflictResolution,
    },
    /// The op may have been applied, but the server has forgotten its key by now, so the client can
    /// neither resend it safely nor learn its outcome. Its lane is halted until the app decides.
    Unknown {
        /// The op.
        id: OpId,
        /// Its collection.
        collection: Arc<str>,
        /// Its key.
        key: Arc<str>,
        /// What the client knows: the last answer, or that the retention passed.
        error: OpError,
        /// The server's current document, when known.
        server_doc: Option<Value>,
        /// The server's current version, when known.
        server_version: Option<String>,
    },
    /// The optimistic view of an entity changed (its value, confirmed version or pending count).
    ViewChanged {
        /// Its collection.
        collection: Arc<str>,
        /// Its key.
        key: Arc<str>,
    },
    /// The app discarded an op.
    Discarded {
        /// The op.
        id: OpId,
        /// Its collection.
        collection: Arc<str>,
        /// Its key.
        key: Arc<str>,
    },
    /// A rate limit blocks all sending.
    Blocked {
        /// Until this engine time.
        until: u64,
    },
    /// The rate-limit block ended.
    Unblocked,
    /// The running sync ended: nothing is left to send or in flight, but failed, conflicted or unknown
    /// ops and those waiting behind them in their entity's lane ([`crate::Status::progress`] is `None`).
    Drained,
    /// The status view-model changed.
    StatusChanged {
        /// The new status.
        status: Status,
    },
}

/// What a conflict strategy did with the op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictResolution {
    /// The op was dropped; the server's document stands (`server-wins`).
    Dropped,
    /// The op was rebased on the server's version and will be sent again (`client-wins`).
    Rebased,
    /// The op is held in `conflict` until the app resolves it (`manual`).
    Held,
    /// The app's resolver function merged the op with the server's document, and the merge is sent as a
    /// new write. The engine itself never says it (it holds the op: `Held`); a runtime that asks a
    /// resolver reports the conflict once it has the answer, with what the answer did.
    Merged,
}
