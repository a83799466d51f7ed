//! The in-flight mark of a batch of several ops, stored as one record instead of one rewrite per op.
//!
//! Before a request leaves, the store must say that each of its ops may reach the server: the attempt
//! it counts (so `max_attempts` survives a tab that crashes on every send) and the horizon after which
//! the server may have forgotten its key. A batch of one op says so by rewriting the op's record. A
//! batch of several says it in one [`BatchMark`]: one write per request instead of one per op, which
//! is most of what a 100-op push cost in storage.
//!
//! The mark lives until the batch's answer is applied: the call that settles the batch writes every op
//! of it that is still queued (as a single-op send would have) and deletes the mark, in one commit. A
//! crash in between leaves the mark, and the next restore folds it into the records
//! ([`MarkedOp::fold`]) exactly as if each had been rewritten at send, then stores the folded records
//! and drops the mark, in its first commit.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::op::{OpId, OpRecord, OpState};

/// The meta key of a batch's mark starts with this, followed by the batch's first op id.
pub const MARK_META_PREFIX: &str = "mark:";

/// One op's part of a mark: its id, the attempt the send counts, and its key's horizon.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkedOp(pub OpId, pub u32, pub u64);

/// See the module docs. Stored as a meta value ([`BatchMark::to_text`]) under [`BatchMark::meta_key`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchMark {
    /// The batch's ops, oldest first (never empty).
    pub ops: Vec<MarkedOp>,
}

impl BatchMark {
    /// The meta key: the first op's id names the mark (an op is in one batch at a time).
    pub fn meta_key(first: OpId) -> String {
        format!("{MARK_META_PREFIX}{first}")
    }

    /// The stored text: `[[id, attempts, horizon], …]`. Written and read through `serde_json::Value`,
    /// which the wasm has anyway, rather than derived code of its own.
    pub fn to_text(&self) -> String {
        let mut ops = Vec::with_capacity(self.ops.len());
        for MarkedOp(id, attempts, horizon) in &self.ops {
            ops.push(json!([id.to_string(), attempts, horizon]));
        }
        Value::Array(ops).to_string()
    }

    /// A mark from its stored text; `None` for anything else.
    pub fn from_text(text: &str) -> Option<BatchMark> {
        let Ok(Value::Array(stored)) = serde_json::from_str(text) else {
            return None;
        };
        let mut ops = Vec::with_capacity(stored.len());
        for op in &stored {
            let id = op.get(0)?.as_str()?.parse().ok()?;
            let attempts = u32::try_from(op.get(1)?.as_u64()?).ok()?;
            ops.push(MarkedOp(id, attempts, op.get(2)?.as_u64()?));
        }
        (!ops.is_empty()).then_some(BatchMark { ops })
    }
}

impl MarkedOp {
    /// Applies the mark to `record` (this op's) if the record predates it (counts fewer attempts): it
    /// then reads as the single-op mark would have written it. Returns whether it changed. A record
    /// that counts the mark's attempt already was written after it, and is newer; so is a halted one
    /// (failed, in conflict, unknown): an op halts only when an answer settles it, which takes its
    /// batch's mark back in the same commit, or when it is given up before it leaves, which a mark
    /// made ahead of its send ([`crate::Engine`]'s marks ahead) must not undo.
    pub fn fold(&self, record: &mut OpRecord) -> bool {
        let MarkedOp(id, attempts, horizon) = *self;
        if record.id != id || record.attempts >= attempts || record.state.is_halted() {
            return false;
        }
        record.attempts = attempts;
        record.state = OpState::Inflight;
        record.next_attempt_at = None;
        record.not_before = None;
        record.horizon.get_or_insert(horizon);
        true
    }
}
