//! The JS shapes of the core's status and events: camelCase fields, times in epoch milliseconds.
//!
//! Written out field by field rather than by renaming keys generically, because documents (`doc`,
//! `serverDoc`) are the app's own data and must pass through untouched.

use outbox_core::{ConflictResolution, Event, Json, OpError, Status, SyncState};
use serde_json::{json, Map, Value};

use crate::transport::wire;

/// The `type` of an event, which is also the name `outbox.on(name, cb)` listens to.
pub fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Enqueued { .. } => "enqueued",
        Event::Sent { .. } => "sent",
        Event::Acked { .. } => "acked",
        Event::RetryScheduled { .. } => "retry_scheduled",
        Event::Failed { .. } => "failed",
        Event::Conflict { .. } => "conflict",
        Event::Unknown { .. } => "unknown",
        Event::Discarded { .. } => "discarded",
        Event::Blocked { .. } => "blocked",
        Event::Unblocked => "unblocked",
        Event::Drained => "drained",
        Event::StatusChanged { .. } => "status_changed",
        // Not an app event: it drives watch() / watchDoc().
        Event::ViewChanged { .. } => "view_changed",
    }
}

/// Every event name, for checking `outbox.on`'s argument.
pub const EVENT_NAMES: [&str; 12] = [
    "enqueued",
    "sent",
    "acked",
    "retry_scheduled",
    "failed",
    "conflict",
    "unknown",
    "discarded",
    "blocked",
    "unblocked",
    "drained",
    "status_changed",
];

/// An event as the app's listeners receive it: `{ type, ... }`.
pub fn event_json(event: &Event) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(event_name(event)));
    match event {
        Event::Enqueued {
            id,
            collection,
            key,
        } => {
            o.insert("id".into(), json!(id.to_string()));
            o.insert("collection".into(), json!(collection));
            o.insert("key".into(), json!(key));
        }
        Event::Sent { batch_id, ids } => {
            o.insert("batchId".into(), json!(batch_id));
            o.insert(
                "ids".into(),
                json!(ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
            );
        }
        Event::Acked {
            id,
            collection,
            key,
            version,
            doc,
        } => {
            o.insert("id".into(), json!(id.to_string()));
            o.insert("collection".into(), json!(&**collection));
            o.insert("key".into(), json!(&**key));
            o.insert(
                "version".into(),
                json!(version.as_deref().map(wire::api_version)),
            );
            o.insert("doc".into(), doc.as_ref().map_or(Value::Null, Json::value));
        }
        Event::RetryScheduled {
            id,
            attempts,
            at,
            error,
        } => {
            o.insert("id".into(), json!(id.to_string()));
            o.insert("attempts".into(), json!(attempts));
            o.insert("at".into(), json!(at));
            o.insert("error".into(), op_error_json(error));
        }
        Event::Failed {
            id,
            collection,
            key,
            error,
        } => {
            o.insert("id".into(), json!(id.to_string()));
            o.insert("collection".into(), json!(&**collection));
            o.insert("key".into(), json!(&**key));
            o.insert("error".into(), op_error_json(error));
        }
        Event::Conflict {
            id,
            error,
            server_doc,
            server_version,
            resolution,
        } => {
            o.insert("id".into(), json!(id.to_string()));
            o.insert("error".into(), op_error_json(error));
            o.insert(
                "serverDoc".into(),
                server_doc.clone().unwrap_or(Value::Null),
            );
            o.insert(
                "serverVersion".into(),
                json!(server_version.as_deref().map(wire::api_version)),
            );
            let resolution = match resolution {
                ConflictResolution::Dropped => "server-wins",
                ConflictResolution::Rebased => "client-wins",
                ConflictResolution::Held => "held",
                ConflictResolution::Merged => "merged",
            };
            o.insert("resolution".into(), json!(resolution));
        }
        Event::Unknown {
            id,
            collection,
            key,
            error,
            server_doc,
            server_version,
        } => {
            o.insert("id".into(), json!(id.to_string()));
            o.insert("collection".into(), json!(&**collection));
            o.insert("key".into(), json!(&**key));
            o.insert("error".into(), op_error_json(error));
            o.insert(
                "serverDoc".into(),
                server_doc.clone().unwrap_or(Value::Null),
            );
            o.insert(
                "serverVersion".into(),
                json!(server_version.as_deref().map(wire::api_version)),
            );
        }
        Event::ViewChanged { collection, key } => {
            o.insert("collection".into(), json!(&**collection));
            o.insert("key".into(), json!(&**key));
        }
        Event::Discarded {
            id,
            collection,
            key,
        } => {
            o.insert("id".into(), json!(id.to_string()));
            o.insert("collection".into(), json!(&**collection));
            o.insert("key".into(), json!(&**key));
        }
        Event::Blocked { until } => {
            o.insert("until".into(), json!(until));
        }
        Event::Unblocked | Event::Drained => {}
        Event::StatusChanged { status } => {
            o.insert("status".into(), status_json(status, None));
        }
    }
    Value::Object(o)
}

/// The status view-model. `fatal` overrides it when the outbox can no longer work at all (another tab
/// upgraded the database, or an internal error): state `error` with that error.
pub fn status_json(status: &Status, fatal: Option<(&str, &str)>) -> Value {
    let state = match status.state {
        SyncState::Restoring => "restoring",
        SyncState::Idle => "idle",
        SyncState::Syncing => "syncing",
        SyncState::Retrying => "retrying",
        SyncState::Offline => "offline",
        SyncState::Paused => "paused",
        SyncState::Blocked => "blocked",
        SyncState::Stalled => "stalled",
        SyncState::Error => "error",
    };
    let (state, last_error) = match fatal {
        Some((code, message)) => ("error", json!({ "code": code, "message": message })),
        None => (
            state,
            status
                .last_error
                .as_ref()
                .map_or(Value::Null, op_error_json),
        ),
    };
    json!({
        "state": state,
        "pending": status.pending,
        "inFlight": status.in_flight,
        "failed": status.failed,
        "conflicts": status.conflicts,
        "unknown": status.unknown,
        "nextAttemptAt": status.next_attempt_at,
        "blockedUntil": status.blocked_until,
        "lastSyncedAt": status.last_synced_at,
        "lastError": last_error,
        "online": status.online,
        "storageError": status.storage_error.as_ref().map(|e| json!({ "code": e.code, "message": e.message })),
        "progress": status.progress.map(|p| json!({ "current": p.current, "total": p.total })),
    })
}

/// An op's last error: `{ code, message, status, class }`.
pub fn op_error_json(error: &OpError) -> Value {
    json!({
        "code": error.code.clone().unwrap_or_else(|| class_name(error).to_owned()),
        "message": error.message,
        "status": error.status,
        "class": class_name(error),
    })
}

fn class_name(error: &OpError) -> &'static str {
    use outbox_core::OutcomeClass::*;
    match error.class {
        Ack => "ack",
        Transient => "transient",
        RateLimited => "rate_limited",
        Conflict => "conflict",
        Auth => "auth",
        Permanent => "permanent",
    }
}
