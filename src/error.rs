//! The errors of the JS API, and how they cross into JS: always as a real `SyncError` (a subclass of
//! `Error`) with a stable `code`, and the original error as `cause` when there is one. Never a string.

use outbox_core::CoreError;
use wasm_bindgen::prelude::*;

use crate::store::StoreError;

#[wasm_bindgen(module = "/src/js/sync-error.js")]
extern "C" {
    /// The JS `SyncError` class (`src/js/sync-error.js`).
    #[wasm_bindgen(extends = js_sys::Error)]
    pub type SyncError;

    #[wasm_bindgen(constructor)]
    fn new(code: &str, message: &str, options: &JsValue) -> SyncError;

    /// The error's stable code.
    #[wasm_bindgen(method, getter)]
    pub fn code(this: &SyncError) -> String;
}

/// Every failure the JS API reports.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// An op passed to `enqueue` is malformed. The message names the field.
    #[error("{0}")]
    InvalidOp(String),
    /// The options passed to `Outbox.open` are malformed. The message names the field.
    #[error("{0}")]
    InvalidConfig(String),
    /// IndexedDB failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused a command (unknown op, op in flight, wrong state …).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A stored record could not be read back.
    #[error("stored op record {id} is unreadable: {reason}")]
    CorruptRecord {
        /// The record's key.
        id: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// `close()` was called.
    #[error("the outbox is closed")]
    Closed,
    /// A pull did not get a usable answer.
    #[error("pull failed: {0}")]
    PullFailed(String),
    /// The outbox was called from inside a registered mutation function, which must be pure.
    #[error("the outbox cannot be used from inside a mutation function (registerMutation): keep it pure")]
    Reentrant,
    /// A bug: a Rust panic. The outbox stops; every later call fails with this code.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The `SyncError.code` for this error. These strings are public API (`SyncErrorCode`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidOp(_) => "INVALID_OP",
            Error::InvalidConfig(_) => "INVALID_CONFIG",
            Error::Store(e) => e.code(),
            Error::Core(e) => match e {
                CoreError::UnknownOp(_) => "UNKNOWN_OP",
                CoreError::InFlight(_) => "OP_IN_FLIGHT",
                CoreError::WrongState { .. } => "WRONG_STATE",
                CoreError::InvalidEntity | CoreError::TooDeep(_) => "INVALID_OP",
                CoreError::InvalidConfig(_) => "INVALID_CONFIG",
                CoreError::UnsupportedFormat { .. }
                | CoreError::DuplicateOp(_)
                | CoreError::UnknownBatch(_) => "CORRUPT_RECORD",
            },
            Error::CorruptRecord { .. } => "CORRUPT_RECORD",
            Error::Closed => "CLOSED",
            Error::PullFailed(_) => "PULL_FAILED",
            Error::Reentrant => "REENTRANT",
            Error::Internal(_) => "INTERNAL",
        }
    }

    fn cause(&self) -> Option<JsValue> {
        match self {
            Error::Store(StoreError::QuotaExceeded { cause, .. })
            | Error::Store(StoreError::Failed { cause, .. }) => Some(cause.clone()),
            Error::Store(StoreError::Closed { cause }) => cause.clone(),
            _ => None,
        }
        .filter(|c| !c.is_undefined())
    }

    /// The JS `SyncError` for this error.
    pub fn to_js(&self) -> SyncError {
        let options = js_sys::Object::new();
        if let Some(cause) = self.cause() {
            // Reflect::set on a fresh plain object cannot fail.
            let _ = js_sys::Reflect::set(&options, &"cause".into(), &cause);
        }
        SyncError::new(self.code(), &self.to_string(), &options)
    }
}

impl From<Error> for JsValue {
    fn from(error: Error) -> Self {
        error.to_js().into()
    }
}

/// The result type of the JS API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
