//! The engine's error type.

use crate::op::{OpId, OpState};

/// Why a command was refused. Commands that fail change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// No op with this id is known (already acked, discarded, or never enqueued).
    #[error("unknown op {0}")]
    UnknownOp(OpId),
    /// The op is being sent; wait for its outcome.
    #[error("op {0} is in flight")]
    InFlight(OpId),
    /// The command does not apply to an op in this state.
    #[error("op {id} is {state:?}; the command does not apply")]
    WrongState {
        /// The op.
        id: OpId,
        /// Its state.
        state: OpState,
    },
    /// No batch with this id is in flight (a late reply after a restart, or a duplicate reply).
    #[error("unknown batch {0}")]
    UnknownBatch(u64),
    /// `collection` or `key` is empty.
    #[error("an op needs a non-empty collection and key")]
    InvalidEntity,
    /// The payload nests deeper than [`crate::MAX_PAYLOAD_DEPTH`]: its record could not be read back.
    #[error("the payload is nested {0} levels deep; at most {max} are stored", max = crate::MAX_PAYLOAD_DEPTH)]
    TooDeep(usize),
    /// A stored record was written by a newer build.
    #[error("op record format {found} is newer than this build reads ({supported})")]
    UnsupportedFormat {
        /// The record's `format_version`.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Two stored records have the same id.
    #[error("duplicate op {0} in stored records")]
    DuplicateOp(OpId),
    /// The configuration cannot work.
    #[error("invalid config: {0}")]
    InvalidConfig(&'static str),
}

impl CoreError {
    /// A stable machine-readable code, for JS `Error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::UnknownOp(_) => "unknown_op",
            CoreError::InFlight(_) => "in_flight",
            CoreError::WrongState { .. } => "wrong_state",
            CoreError::UnknownBatch(_) => "unknown_batch",
            CoreError::InvalidEntity => "invalid_entity",
            CoreError::TooDeep(_) => "too_deep",
            CoreError::UnsupportedFormat { .. } => "unsupported_format",
            CoreError::DuplicateOp(_) => "duplicate_op",
            CoreError::InvalidConfig(_) => "invalid_config",
        }
    }
}
