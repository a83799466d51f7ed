//! Effects: the only way the core acts on the world. The runtime runs them; the core never does I/O.

use std::sync::Arc;

use crate::json::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::Event;
use crate::op::{OpId, OpKind, OpRecord};
use crate::view::ConfirmedDoc;

/// Something the runtime must do. Returned in order from every engine call.
///
/// **The barrier rule.** A `Send` may leave only once every storage effect returned before it (by the
/// same call and by every earlier call) that writes one of its ops (a `Persist` or `Delete` of the op,
/// a `PersistMark` that names it) or a meta value (`PersistClock`, `PersistRetention`) is committed.
/// The request then never carries state that is not yet durable: a new idempotency key, a rebased
/// precondition, or the in-flight mark that tells a restarted engine the server may have applied the
/// op (a `Persist` of the op, or one `PersistMark` for a batch of several ops or for the ops marked
/// ahead of their sends). Otherwise a tab killed between the request leaving and the commit comes back
/// with the old key and no mark, and the next attempt, under yet another key, applies the op a second
/// time. Writes about other ops (an ack's `Delete` and `PersistDoc`) do not hold it: commits land in
/// order, so a crash can lose only those, and their ops are then resent under their own keys and
/// replayed. [`crate::EffectQueue`] implements the rule; a runtime that runs effects through it obeys
/// it.
///
/// Storage effects are committed in order. The effects of one call belong in one transaction (an
/// ack's `Delete` and `PersistDoc` must land together, a settled batch's writes and its `DeleteMark`
/// too); several calls may share one.
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
    /// Store the server's stated idempotency retention (ms); give it back to the next restore
    /// ([`crate::Stored::stated_retention_ms`]), so keys first sent before the next session hears from
    /// the server already get the right horizon. Stored as a meta value under
    /// [`crate::RETENTION_META_KEY`].
    PersistRetention(u64),
    /// Store the engine's clock (a meta value under [`crate::CLOCK_META_KEY`]); give it back to the next
    /// restore ([`crate::Stored::clock_mark`]). Written now and then while ops are held, so a clock set
    /// back between two loads is noticed: the next session starts before this mark.
    PersistClock(u64),
    /// Store the in-flight mark of a batch of several ops (a meta value under
    /// [`crate::BatchMark::meta_key`] of its first op): comes before the batch's `Send`, instead of a
    /// `Persist` of each op. Give it back to the next restore ([`crate::Stored::marks`]).
    PersistMark(crate::mark::BatchMark),
    /// Delete the mark named by this first op id: comes after the writes of the ops it marked, in the
    /// call that settles its batch.
    DeleteMark(OpId),
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
    pub payload: Json,
    /// Sent as `If-Match` when present.
    pub base_version: Option<String>,
    /// Sent as `If-None-Match: *`: create the document, never overwrite one.
    #[serde(default)]
    pub create_only: bool,
    /// 1 for the first send; every send of the op counts, a retry's too ([`crate::OpRecord::attempts`]).
    pub attempt: u32,
}
