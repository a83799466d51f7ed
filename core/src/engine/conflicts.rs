//! Conflicts: the server holds a different version than an op was made against.

use super::*;

impl Engine {
    /// The server's state differs from the one the op was made against (`If-Match` failed, or
    /// `If-None-Match: *` met a live document). Its current state (the problem's `current`,
    /// docs/PROTOCOL.md) becomes the confirmed one if it is newer, then the collection's strategy decides
    /// what happens to the op.
    pub(super) fn conflict(
        &mut self,
        id: OpId,
        response: Option<&Response>,
        error: OpError,
        fx: &mut Vec<Effect>,
    ) {
        let record = &self.ops[&id].record;
        let (collection, key, kind) = (
            record.collection.clone(),
            record.key.clone(),
            record.kind.clone(),
        );
        let current = response.and_then(server_current);
        let (server_doc, server_version) = match &current {
            Some(c) => (c.doc.as_ref().map(Json::value), c.version.clone()),
            // No `current`: keep whatever the server said, for the app to show.
            None => (response.and_then(Response::body_value), None),
        };
        // A state with no version ("the document does not exist") has nothing to order by: it only
        // decides the rebase below.
        if let Some(current) = current.as_ref().filter(|c| c.version.is_some()) {
            self.confirm(&collection, &key, current.clone(), false, fx);
        }
        let strategy = self.config.collection(&collection).conflict;
        // The precondition the op would carry on top of the server's state; the same as before means
        // the server said the same thing again, and rebasing would only loop.
        let rebase_to = current
            .as_ref()
            .map(|c| settling::precondition_on(&kind, Some(c)))
            .filter(|(base, create_only)| {
                let r = &self.ops[&id].record;
                (base, *create_only) != (&r.base_version, r.create_only)
            });
        match (strategy, rebase_to) {
            // Without the server's state there is no evidence what to give way to: the op is held for
            // the app, never dropped.
            (ConflictStrategy::ServerWins, _) if current.is_some() => {
                let entry = self.take_entry(id);
                self.settled += 1;
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
            (ConflictStrategy::ClientWins, Some((base, create_only))) => {
                // The refusal is definitive: nothing was applied under this key (the server would have
                // replayed it), and errors are not recorded against keys (docs/PROTOCOL.md §4), so the
                // rebased op keeps its key. Every copy of the op, in any tab, then stays one request.
                let now = self.now;
                let entry = self.ops.get_mut(&id).expect("settled op exists");
                set_state(&mut self.counts, &mut entry.record, OpState::Pending);
                entry.record.base_version = base;
                entry.record.create_only = create_only;
                entry.record.auto_base = false;
                entry.record.maybe_applied = false;
                entry.record.last_error = Some(error.clone());
                entry.record.next_attempt_at = entry.record.not_before.filter(|t| *t > now);
                fx.push(Effect::Persist(entry.record.clone()));
                self.note_error(id);
                fx.push(Effect::Emit(Event::Conflict {
                    id,
                    error,
                    server_doc,
                    server_version,
                    resolution: ConflictResolution::Rebased,
                }));
                self.schedule_if_head(id);
            }
            // Manual, or client-wins without a different state to rebase on (which would loop).
            _ => {
                self.ops.get_mut(&id).expect("exists").record.server_version = server_version;
                self.halt(id, OpState::Conflict, error, server_doc, None, fx);
            }
        }
        self.refold_entity(&collection, &key, fx);
    }
}

/// The `current` member of a conflict problem (docs/PROTOCOL.md §2): the server's version and document.
/// `"current": null` means the document does not exist; a tombstone has `deleted: true`. Both read as
/// "no live document" (`doc: None`).
pub(super) fn server_current(response: &Response) -> Option<Confirmed> {
    let body = response.body_value()?;
    let current = body.get("current")?;
    if current.is_null() {
        return Some(Confirmed::default());
    }
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
        Some(doc) if !deleted && !doc.is_null() => Some(Json::from(doc)),
        _ => None,
    };
    Some(Confirmed { version, doc })
}
