//! Conflicts: the server holds a newer version than an op was made against.

use super::*;

impl Engine {
    /// The server holds a newer version than the op was made against. Its current document (the
    /// problem's `current`, docs/PROTOCOL.md) becomes the confirmed state, then the collection's strategy
    /// decides what happens to the op.
    pub(super) fn conflict(
        &mut self,
        id: OpId,
        response: Option<&Response>,
        error: OpError,
        fx: &mut Vec<Effect>,
    ) {
        let record = &self.ops[&id].record;
        let (collection, key) = (record.collection.clone(), record.key.clone());
        let current = response.and_then(server_current);
        let (server_doc, server_version) = match &current {
            Some(c) => (c.doc.as_deref().cloned(), c.version.clone()),
            // No `current`: keep whatever the server said, for the app to show.
            None => (response.and_then(|r| r.body.clone()), None),
        };
        if let Some(current) = current {
            fx.push(Effect::PersistDoc(confirmed_doc(
                &collection,
                &key,
                &current,
            )));
            self.view.set_confirmed(&collection, &key, current);
        }
        let strategy = self.config.collection(&collection).conflict;
        let rebase_to = server_version
            .clone()
            .filter(|v| Some(v) != self.ops[&id].record.base_version.as_ref());
        match (strategy, rebase_to) {
            (ConflictStrategy::ServerWins, _) => {
                let entry = self.ops.remove(&id).expect("settled op exists");
                *self.counts.slot(entry.record.state) -= 1;
                self.remove_head(entry.lane_hash, id);
                fx.push(Effect::Delete(id));
                fx.push(Effect::Emit(Event::Conflict {
                    id,
                    error,
                    server_doc,
                    server_version,
                    resolution: ConflictResolution::Dropped,
                }));
            }
            (ConflictStrategy::ClientWins, Some(version)) => {
                // A 412 is definitive (the op was not applied), so the resend is a new request: new key.
                let key = self.new_uuid();
                let now = self.now;
                let entry = self.ops.get_mut(&id).expect("settled op exists");
                set_state(&mut self.counts, &mut entry.record, OpState::Pending);
                entry.record.base_version = Some(version);
                entry.record.auto_base = false;
                entry.record.idempotency_key = key;
                entry.record.maybe_applied = false;
                entry.record.last_error = Some(error.clone());
                entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
                fx.push(Effect::Persist(entry.record.clone()));
                fx.push(Effect::Emit(Event::Conflict {
                    id,
                    error,
                    server_doc,
                    server_version,
                    resolution: ConflictResolution::Rebased,
                }));
                self.schedule_if_head(id);
            }
            // Manual, or client-wins without a newer version to rebase on (which would loop).
            _ => {
                self.ops.get_mut(&id).expect("exists").record.server_version = server_version;
                self.halt(id, OpState::Conflict, error, server_doc, None, fx);
            }
        }
        self.refold_entity(&collection, &key, fx);
    }
}

/// The `current` member of a conflict problem (docs/PROTOCOL.md): the server's version and document.
pub(super) fn server_current(response: &Response) -> Option<Confirmed> {
    let current = response.body.as_ref()?.get("current")?;
    if !["doc", "deleted", "etag", "version"]
        .iter()
        .any(|field| current.get(field).is_some())
    {
        return None;
    }
    let version = match (current.get("etag"), current.get("version")) {
        (Some(Value::String(etag)), _) => Some(etag.clone()),
        (_, Some(Value::Number(n))) => Some(format!("\"{n}\"")),
        (_, Some(Value::String(v))) => Some(v.clone()),
        _ => None,
    };
    let deleted = current
        .get("deleted")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let doc = match current.get("doc") {
        Some(doc) if !deleted && !doc.is_null() => Some(Arc::new(doc.clone())),
        _ => None,
    };
    Some(Confirmed { version, doc })
}
