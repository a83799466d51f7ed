//! Storage errors, classified by what the runtime must do about them.
//!
//! IndexedDB reports failures as `DOMException`s whose `name` says what happened. The runtime needs three
//! answers from that name: is the user out of space (tell the app, roll back), did the connection go away
//! (reopen once and retry), or did another tab start a schema upgrade (step aside). The original exception
//! is kept as the cause so nothing is lost for debugging.

use wasm_bindgen::JsValue;

/// A failed storage operation.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The origin is out of storage quota; the transaction was rolled back, nothing half-written.
    #[error("storage quota exceeded: {message}")]
    QuotaExceeded {
        /// The browser's message.
        message: String,
        /// The original `DOMException`.
        cause: JsValue,
    },
    /// Another tab is opening this database with a newer schema. This connection closed itself so that
    /// the upgrade is not blocked; this instance can no longer store anything.
    #[error("another tab is upgrading the database to a newer schema; this connection was closed")]
    UpgradeBlocked,
    /// The connection was closed (by the browser or by `close()`) and could not be reopened.
    #[error("the database connection is closed")]
    Closed {
        /// The original error, when there was one.
        cause: Option<JsValue>,
    },
    /// Any other IndexedDB failure.
    #[error("IndexedDB {name}: {message}")]
    Failed {
        /// The `DOMException` name (`UnknownError`, `DataCloneError` …) or `Error`.
        name: String,
        /// The browser's message.
        message: String,
        /// The original error.
        cause: JsValue,
    },
}

impl StoreError {
    /// The stable error code the JS API reports for this error (`SyncError.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Self::UpgradeBlocked => "DB_UPGRADE_BLOCKED",
            Self::Closed { .. } => "DB_CLOSED",
            Self::Failed { .. } => "STORAGE_FAILED",
        }
    }

    /// True when the connection itself is gone, so reopening it and running the transaction again may
    /// succeed. A transaction that failed this way committed nothing.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Closed { .. })
    }

    /// Classifies any error value IndexedDB produced.
    pub fn from_js(error: JsValue) -> Self {
        let name = js_string_field(&error, "name").unwrap_or_else(|| "Error".to_owned());
        let message = js_string_field(&error, "message")
            .or_else(|| error.as_string())
            .unwrap_or_default();
        match name.as_str() {
            "QuotaExceededError" => Self::QuotaExceeded {
                message,
                cause: error,
            },
            // Chromium raises InvalidStateError from `transaction()` on a closed connection, and
            // UnknownError when the backing store was lost (for example after "Clear site data").
            "InvalidStateError" | "UnknownError" => Self::Closed { cause: Some(error) },
            _ => Self::Failed {
                name,
                message,
                cause: error,
            },
        }
    }
}

impl From<indexed_db_futures::error::Error> for StoreError {
    fn from(error: indexed_db_futures::error::Error) -> Self {
        use indexed_db_futures::error::Error;
        match error {
            Error::DomException(e) => Self::from_js(e.into()),
            Error::Unknown(e) => Self::from_js(e.into()),
            other => Self::Failed {
                name: "Error".to_owned(),
                message: other.to_string(),
                cause: JsValue::UNDEFINED,
            },
        }
    }
}

impl From<indexed_db_futures::error::OpenDbError> for StoreError {
    fn from(error: indexed_db_futures::error::OpenDbError) -> Self {
        use indexed_db_futures::error::OpenDbError;
        match error {
            OpenDbError::Base(e) => e.into(),
            other => Self::Failed {
                name: "OpenError".to_owned(),
                message: other.to_string(),
                cause: JsValue::UNDEFINED,
            },
        }
    }
}

fn js_string_field(value: &JsValue, field: &str) -> Option<String> {
    if !value.is_object() {
        return None;
    }
    js_sys::Reflect::get(value, &JsValue::from_str(field))
        .ok()
        .and_then(|v| v.as_string())
}
