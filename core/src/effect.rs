//! Effects: the only way the core acts on the world. The runtime runs them; the core never does I/O.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::Event;
use crate::op::{OpId, OpKind, OpRecord};
use crate::view::ConfirmedDoc;

/// Something the runtime must do. Returned in order from every engine call.
///
/// Storage effects (`Persist`, `Delete`) of one call should be committed in one IndexedDB transaction.
/// A `Send` need not wait for that commit: if the tab dies first, the op is restored in its previous
/// state with the same idempotency key and the server replays its stored response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Effect {
    /// Write (insert or replace) this record.
    Persist(OpRecord),
    /// Delete the record with this id.
    Delete(OpId),
    /// Write (insert or replace) the confirmed document of an entity. Comes in the same call as the
    /// `Delete` of the op an ack settled, so both belong in one transaction.
    PersistDoc(ConfirmedDoc),
    /// Send this batch, then report back with `on_reply` or `on_network_error`.
    Send(Batch),
    /// Call `tick` at this engine time (replaces any earlier wake-up).
    ScheduleWake(u64),
    /// Tell the app.
    Emit(Event),
}

/// A group of ops, at most one per lane, to send in one request (or one by one by a custom transport).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Identifies the batch in `on_reply` / `on_network_error`.
    pub id: u64,
    /// The runtime must ask the app's auth callback for *fresh* credentials before sending (a 401 came back).
    pub refresh_auth: bool,
    /// The ops, oldest first.
    pub ops: Vec<SendOp>,
}

/// One op as the transport needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendOp {
    /// The op id (to match results).
    pub id: OpId,
    /// Sent as `Idempotency-Key`.
    pub idempotency_key: Uuid,
    /// The entity's collection.
    pub collection: Arc<str>,
    /// The entity's key.
    pub key: Arc<str>,
    /// What the op does.
    pub kind: OpKind,
    /// The JSON payload.
    pub payload: Arc<Value>,
    /// Sent as `If-Match` when present.
    pub base_version: Option<String>,
    /// 1 for the first send.
    pub attempt: u32,
}
