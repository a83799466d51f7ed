//! Stored records that cannot be read: a record of a newer release, or one damaged on disk. They never
//! keep the outbox from opening; each is shown as a failed op (`failed()`, code `CORRUPT_RECORD`, with its
//! raw text) until the app discards it, and is never sent or rewritten.

use std::rc::Rc;

use outbox_core::{OpId, Write};
use serde_json::{json, Value};

use super::Runtime;
use crate::error::Result;

/// One record set aside at open.
pub(crate) struct Quarantined {
    pub(crate) id: OpId,
    /// The stored text, for the app to inspect or salvage.
    pub(crate) raw: String,
    pub(crate) reason: String,
}

impl Runtime {
    /// Snapshots of the records set aside, shaped like the failed ops they are shown as.
    pub(super) fn quarantined_snapshots(&self) -> Vec<Value> {
        self.quarantined
            .borrow()
            .iter()
            .map(|q| {
                // What the record still says about itself, where it is readable JSON at all.
                let readable: Value = serde_json::from_str(&q.raw).unwrap_or(Value::Null);
                let field = |name: &str| readable.get(name).and_then(Value::as_str).unwrap_or("");
                json!({
                    "id": q.id.to_string(),
                    "idempotencyKey": field("idempotency_key"),
                    "collection": field("collection"),
                    "key": field("key"),
                    "createdAt": readable.get("created_at").and_then(Value::as_u64).unwrap_or(0),
                    "state": "failed",
                    "attempts": 0,
                    "maybeApplied": true,
                    "lastError": {
                        "code": "CORRUPT_RECORD",
                        "class": "permanent",
                        "status": null,
                        "message": format!("the stored record cannot be read: {}", q.reason),
                    },
                    "raw": q.raw,
                })
            })
            .collect()
    }

    /// Discards a record set aside, if `id` is one: `Some` with the future of its deletion.
    pub(super) fn discard_quarantined(
        self: &Rc<Self>,
        id: OpId,
    ) -> Option<impl std::future::Future<Output = Result<()>> + 'static> {
        let mut quarantined = self.quarantined.borrow_mut();
        let at = quarantined.iter().position(|q| q.id == id)?;
        quarantined.remove(at);
        drop(quarantined);
        let group = self
            .durable
            .queue
            .borrow_mut()
            .add_writes(vec![Write::DeleteOp(id)]);
        self.schedule_commit();
        let done = self.durable(group);
        Some(async move { done.await.map_err(Into::into) })
    }

    /// How many records are set aside.
    pub(super) fn quarantined_count(&self) -> usize {
        self.quarantined.borrow().len()
    }
}
