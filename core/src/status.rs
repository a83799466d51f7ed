//! The status view-model: what a sync indicator shows.

use serde::{Deserialize, Serialize};

use crate::op::OpError;

/// The one-word summary of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Nothing to send, nothing failed.
    Idle,
    /// Ops are waiting or in flight.
    Syncing,
    /// The network is down.
    Offline,
    /// The app paused sending.
    Paused,
    /// The server's rate limit blocks sending until `blocked_until`.
    Blocked,
    /// Storage is failing (`storage_error`): nothing is sent until the outbox's state is durable again.
    Stalled,
    /// Nothing is moving, and some ops are failed, in conflict or of unknown outcome.
    Error,
}

/// Storage could not commit the outbox's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageError {
    /// The runtime's code (`QUOTA_EXCEEDED`, `DB_UPGRADE_BLOCKED`, `STORAGE` …).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// A snapshot of the engine for the UI. Cheap to build: every field is kept up to date incrementally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The summary. Precedence: stalled, paused, offline, blocked, syncing, error, idle.
    pub state: SyncState,
    /// Ops waiting to be sent (pending or backing off).
    pub pending: usize,
    /// Ops sent and awaiting their outcome.
    pub in_flight: usize,
    /// Dead-lettered ops.
    pub failed: usize,
    /// Ops held in conflict.
    pub conflicts: usize,
    /// Ops whose outcome can no longer be known ([`crate::OpState::Unknown`]).
    pub unknown: usize,
    /// The earliest backoff expiry, engine ms.
    pub next_attempt_at: Option<u64>,
    /// Sending is blocked by a rate limit until this engine time.
    pub blocked_until: Option<u64>,
    /// Engine time of the last ack.
    pub last_synced_at: Option<u64>,
    /// The most recent error; cleared by the next ack.
    pub last_error: Option<OpError>,
    /// Whether the runtime reports the network as up.
    pub online: bool,
    /// Set while storage fails: the outbox sends nothing until a commit succeeds again.
    pub storage_error: Option<StorageError>,
}
