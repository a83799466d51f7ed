//! The status view-model: what a sync indicator shows.

use serde::{Deserialize, Serialize};

use crate::op::OpError;

/// The one-word summary of the engine: the first row of this table whose condition holds (the README's
/// state table). Each condition is read off the ops and the engine's switches, so two fields of one
/// [`Status`] can never tell different stories.
///
/// | state | condition |
/// |---|---|
/// | `Restoring` | the outbox is still reading its stored queue ([`crate::Restoring::status`]; a live engine never is) |
/// | `Stalled` | `storage_error` is set |
/// | `Paused` | the app paused sending |
/// | `Offline` | the runtime reports the network down |
/// | `Blocked` | `blocked_until` is set (a rate limit) |
/// | `Syncing` | some entity's first op is in flight, or can be sent now (ready, or its enqueue is being stored) |
/// | `Retrying` | no such op, and some entity's first op waits for its backoff (`next_attempt_at`) |
/// | `Error` | no op can move by itself: some are failed, in conflict or of unknown outcome (and any pending ones wait behind them) |
/// | `Idle` | no ops at all |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// The stored queue is being read at open: the counts are those of the records read so far, and
    /// `progress` says how many of how many ([`crate::Restoring::status`]).
    Restoring,
    /// No ops at all.
    Idle,
    /// An op is in flight or can be sent now.
    Syncing,
    /// Ops wait for a backoff to expire (`next_attempt_at`); nothing is in flight or can be sent now.
    Retrying,
    /// The network is down.
    Offline,
    /// The app paused sending.
    Paused,
    /// The server's rate limit blocks sending until `blocked_until`.
    Blocked,
    /// Storage is failing (`storage_error`): nothing is sent until the outbox's state is durable again.
    Stalled,
    /// Nothing can move until the app acts: some ops are failed, in conflict or of unknown outcome, and
    /// any pending ones wait behind them.
    Error,
}

/// How far the running sync has come.
///
/// A sync starts when ops are there to settle while none was running, and ends (at the end of the call)
/// when none is left: nothing pending or in flight, or only ops held behind a failed, conflicted or
/// unknown op of their entity. `total - current` is always the number of ops still to settle (pending or
/// in flight, not held), so `total` grows with every op enqueued (or retried) during the sync, and shrinks
/// when ops leave it unsettled (held behind an op that just failed, or an enqueue whose commit failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Ops settled since the sync started: acked, failed, in conflict (held or dropped), of unknown
    /// outcome, or discarded.
    pub current: usize,
    /// `current` plus the ops still to settle.
    pub total: usize,
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
    /// The summary. Precedence: restoring (only before the engine exists), stalled, paused, offline, blocked, syncing, retrying, error, idle (see
    /// [`SyncState`] for each condition).
    pub state: SyncState,
    /// Ops waiting to be sent (pending or backing off, including those held behind a halted op).
    pub pending: usize,
    /// Ops sent and awaiting their outcome.
    pub in_flight: usize,
    /// Dead-lettered ops.
    pub failed: usize,
    /// Ops held in conflict.
    pub conflicts: usize,
    /// Ops whose outcome can no longer be known ([`crate::OpState::Unknown`]).
    pub unknown: usize,
    /// The earliest backoff expiry of an entity's first op, engine ms. Always set while `Retrying`.
    pub next_attempt_at: Option<u64>,
    /// Sending is blocked by a rate limit until this engine time.
    pub blocked_until: Option<u64>,
    /// Engine time of the last ack.
    pub last_synced_at: Option<u64>,
    /// The error of the op that met one most recently, among the ops still held: failed, in conflict,
    /// unknown, backing off, or sent again after its error and not yet acked. An op keeps its error until it
    /// is acked, dropped or discarded; `None` once no op holds one. After a restore, "most recently"
    /// follows enqueue order (the records keep no error times).
    pub last_error: Option<OpError>,
    /// Whether the runtime reports the network as up.
    pub online: bool,
    /// Set while storage fails: the outbox sends nothing until a commit succeeds again.
    pub storage_error: Option<StorageError>,
    /// The running sync, or `None` when none runs ([`Progress`]). A restore starts a new one. While
    /// `Restoring`: the stored records read (`current`) of those stored (`total`).
    pub progress: Option<Progress>,
}
