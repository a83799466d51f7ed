//! The op model and its stored record format.
//!
//! An op is one change the app made to one entity (`collection` + `key`). The engine keeps ops as
//! [`OpRecord`]s, which are also exactly what the runtime stores in IndexedDB, so a restart rebuilds the
//! engine from the same values it had before the crash.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::json::Json;
use crate::outcome::OutcomeClass;

/// The current version of the [`OpRecord`] storage format.
///
/// Bump it when a stored field changes meaning, and teach [`OpRecord`] decoding to read the old shape;
/// `tests/record_format.rs` keeps literal records of every version that must still decode.
///
/// * 1: the first format.
/// * 2: adds `create_only` (sent as `If-None-Match: *`), `horizon` (when the server may forget the
///   key) and the state `unknown`. A version-1 record reads as version 2 with neither set.
///
/// Still 2: `uncharged_attempts` came later, and needs no bump. A record without it reads exactly as
/// before (every attempt in `attempts` counts against `max_attempts`, as it did), and a build that
/// predates it reads a newer record as one with more attempts spent: at worst it gives up sooner, where a
/// bump would make it quarantine every record.
pub const FORMAT_VERSION: u32 = 2;

/// How deeply a payload may nest (arrays and objects). A stored record must parse back, and the JSON
/// parser (like the reference server's) stops at 128 levels; the record and a push body wrap the payload
/// in a few more.
pub const MAX_PAYLOAD_DEPTH: usize = 100;

/// How deeply `value` nests (a scalar is 0).
pub fn payload_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(payload_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(payload_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The engine's id for an op: the handle the app uses for retry / discard.
///
/// Kept separate from the idempotency key because the key may be rotated when the app retries an op
/// the server definitively refused, while the op's identity stays the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub Uuid);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl OpId {
    /// The id as a number that orders as the id does, for [`crate::order::sort_by_key`].
    pub fn sort_key(self) -> u128 {
        self.0.as_u128()
    }
}

impl std::str::FromStr for OpId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(OpId)
    }
}

/// What the op does to its entity.
///
/// Stored as `{ "type": "put" }` … `{ "type": "custom", "name": … }` (serde's internally tagged form),
/// read back through [`OpKindFields`]: serde's own reader of that form buffers the object first, which
/// costs the wasm its generic buffering code for this one type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "OpKindFields")]
pub enum OpKind {
    /// Replace the document with the payload.
    Put,
    /// Apply the payload as a JSON merge patch (RFC 7396).
    Patch,
    /// Delete the document; the payload is ignored.
    Delete,
    /// A mutation the app names; the payload is sent as-is.
    Custom {
        /// The app's name for the mutation.
        name: String,
    },
}

/// The stored fields of an [`OpKind`], as written by its `Serialize`.
#[derive(Deserialize)]
struct OpKindFields {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
}

impl TryFrom<OpKindFields> for OpKind {
    type Error = String;

    fn try_from(fields: OpKindFields) -> Result<Self, Self::Error> {
        Ok(match (fields.kind.as_str(), fields.name) {
            ("put", _) => OpKind::Put,
            ("patch", _) => OpKind::Patch,
            ("delete", _) => OpKind::Delete,
            ("custom", Some(name)) => OpKind::Custom { name },
            ("custom", None) => return Err("missing field `name`".to_owned()),
            (other, _) => return Err(format!("unknown op kind `{other}`")),
        })
    }
}

/// Where an op is in its lifecycle (see the diagram in the crate README).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    /// Waiting for its turn (or for the lane head before it).
    Pending,
    /// Sent; the outcome is not known yet.
    Inflight,
    /// A transient failure: waiting until `next_attempt_at`.
    Backoff,
    /// The server refused it (or retries ran out). Halts its lane until retried or discarded.
    Failed,
    /// The server holds a newer version. Halts its lane until retried or discarded.
    Conflict,
    /// The op may have been applied under its key, but the server has forgotten the key by now (its
    /// idempotency retention passed), so resending could apply it twice and the outcome cannot be
    /// learned. Halts its lane until the app decides (retry, resolve or discard).
    Unknown,
}

impl OpState {
    /// Failed, in conflict or unknown: the op halts its lane until the app acts.
    pub fn is_halted(self) -> bool {
        matches!(self, OpState::Failed | OpState::Conflict | OpState::Unknown)
    }
}

/// The last error an op met, as shown to the app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpError {
    /// How the outcome was classified.
    pub class: OutcomeClass,
    /// The HTTP status, or `None` for a network error / lost response.
    #[serde(default)]
    pub status: Option<u16>,
    /// A machine-readable code: the problem `type` when the server sent one, else a short name.
    #[serde(default)]
    pub code: Option<String>,
    /// A human-readable message (the problem `title`/`detail` when present).
    pub message: String,
}

/// What the app passes to `enqueue`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewOp {
    /// The collection of the entity.
    pub collection: String,
    /// The key of the entity inside its collection.
    pub key: String,
    /// What the op does.
    pub kind: OpKind,
    /// The JSON payload (ignored for deletes).
    #[serde(default)]
    pub payload: Json,
    /// The version the change was made against; sent as `If-Match` when present.
    #[serde(default)]
    pub base_version: Option<String>,
}

/// One op as stored: the stable, versioned record format.
///
/// All fields after `state` have serde defaults so records written by older builds that lacked them
/// still decode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The storage format version this record was written with ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The engine's id for the op.
    pub id: OpId,
    /// Sent as `Idempotency-Key`; reused on every retry so the server applies the op at most once.
    pub idempotency_key: Uuid,
    /// Enqueue order: an entity's ops are sent in `(seq, id)` order. Each tab hands out seqs above every
    /// one it has seen (a Lamport clock), so an op made after another tab's op was seen sorts after it;
    /// two tabs that enqueue at the same moment may hand out the same seq, and the id breaks the tie.
    pub seq: u64,
    /// The entity's collection. Interned: all ops of a collection share one string.
    pub collection: Arc<str>,
    /// The entity's key. Shared (not copied) with the `Send` and `Persist` effects.
    pub key: Arc<str>,
    /// What the op does.
    pub kind: OpKind,
    /// The JSON payload, as the app's text. Shared (not copied) with the `Send` and `Persist` effects:
    /// it never changes after enqueue except through `resolve`, which replaces it.
    #[serde(default)]
    pub payload: Json,
    /// The version the change was made against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<String>,
    /// Engine time (ms) when the op was enqueued.
    pub created_at: u64,
    /// How many times the op has been sent, ever: never reset, not even by the app's retry.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Lifecycle state.
    pub state: OpState,
    /// The last error the op met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<OpError>,
    /// Engine time (ms) before which the op must not be sent (backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    /// Engine time (ms) the *server* asked us to wait until (Retry-After). Unlike the jittered backoff,
    /// coming back online does not clear it: we never retry sooner than the server asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// Engine time (ms) of the app's last manual retry; `max_age` counts from it when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_at: Option<u64>,
    /// The server's current document, held with a conflicted op so the app can resolve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_doc: Option<Value>,
    /// True once an attempt ended without a definitive answer (network error, lost response, 5xx …),
    /// so the server *may* have applied the op under the current idempotency key. While it is true the
    /// key is never rotated: only the same key guarantees the op is applied at most once.
    #[serde(default, skip_serializing_if = "is_false")]
    pub maybe_applied: bool,
    /// The base version was filled in by the engine (the entity's confirmed version at enqueue), not
    /// given by the app. Such a base follows the op's own lane: when the op before it is acknowledged,
    /// it moves to the version that op produced, so a chain of local edits never conflicts with itself.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_base: bool,
    /// The server's version of the document held with a conflicted op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// Sent with `If-None-Match: *`: the op creates the document and must not overwrite one (the
    /// client knows of no live version). Never together with `base_version`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub create_only: bool,
    /// Engine time after which the server may have forgotten the current idempotency key: set when the
    /// key is first sent (send time + the server's retention, less a margin). A possibly-applied op is
    /// never resent under its key after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<u64>,
    /// The attempts (of `attempts`) that do not count against `max_attempts`: those made before the app's
    /// last explicit retry or resolution, which gives a fresh budget, and those that were not the op's
    /// fault (a rate limit, a batch refused as a whole). See [`OpRecord::charged_attempts`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uncharged_attempts: u32,
}

// Default values are left out of stored records (every such field has `#[serde(default)]`, so they read
// back the same): records a third smaller, and IndexedDB writes and restores faster with them.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// For `skip_serializing_if`: a `false` flag is left out of a stored record.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

impl OpRecord {
    /// The entity (and so the lane) this op belongs to.
    pub fn entity(&self) -> (&str, &str) {
        (&self.collection, &self.key)
    }

    /// The attempts that count against the retry policy's `max_attempts` (and set the backoff's window):
    /// those since the app last retried the op, less the ones that were not its fault.
    pub fn charged_attempts(&self) -> u32 {
        self.attempts.saturating_sub(self.uncharged_attempts)
    }

    /// The time `max_age` is measured from; also the earliest moment the current key can have been
    /// sent (keys are minted at enqueue, or when a manual retry or a resolution replaces them).
    pub(crate) fn age_origin(&self) -> u64 {
        self.retried_at.unwrap_or(self.created_at)
    }

    /// Whether the op keeps the head of its lane whatever arrives: it was sent at least once (the server
    /// may hold its effect, so nothing may overtake it), or it is halted or backing off. Every other op
    /// of a lane is kept in `(seq, id)` order, live and after a restart alike, so every tab of an
    /// outbox folds an entity's ops in the same order (see `Engine::adopt`).
    pub fn holds_lane_head(&self) -> bool {
        self.attempts > 0 || self.maybe_applied || self.state != OpState::Pending
    }

    /// Whether the op names the version it was made on (`If-Match`). Such an op cannot be applied twice
    /// even after the server forgot its key: the first application changed that version, and versions
    /// only grow. `If-None-Match: *` is no such guard: once the document is deleted again, the same
    /// create matches a second time.
    pub fn is_conditional(&self) -> bool {
        self.base_version.is_some()
    }

    /// Approximate wire size, used for `max_bytes` batching. Computed once per op.
    pub(crate) fn wire_size(&self) -> usize {
        // Fixed overhead covers the id, key, kind and JSON punctuation of a push entry.
        const OVERHEAD: usize = 128;
        OVERHEAD + self.collection.len() + self.key.len() + self.payload.text().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn op_kinds_read_back_what_they_write() {
        let kinds = [
            OpKind::Put,
            OpKind::Patch,
            OpKind::Delete,
            OpKind::Custom {
                name: "rename".into(),
            },
        ];
        for kind in kinds {
            let text = serde_json::to_string(&kind).unwrap();
            assert_eq!(
                serde_json::from_str::<OpKind>(&text).unwrap(),
                kind,
                "{text}"
            );
        }
        assert_eq!(
            serde_json::to_value(OpKind::Custom { name: "x".into() }).unwrap(),
            json!({ "type": "custom", "name": "x" }),
            "the stored form is unchanged"
        );
    }

    #[test]
    fn an_unreadable_op_kind_is_an_error() {
        let read =
            |v: serde_json::Value| serde_json::from_value::<OpKind>(v).map_err(|e| e.to_string());
        assert!(read(json!({ "type": "custom" }))
            .unwrap_err()
            .contains("name"));
        assert!(read(json!({ "type": "upsert" }))
            .unwrap_err()
            .contains("upsert"));
        assert!(read(json!({ "name": "x" })).is_err());
        assert_eq!(read(json!({ "type": "put", "extra": 1 })), Ok(OpKind::Put));
    }
}
