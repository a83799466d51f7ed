//! The optimistic view: for each entity, the server's last confirmed document with the entity's pending
//! ops applied on top, in lane order.
//!
//! The engine keeps it up to date as ops come and go: an enqueue applies the new op to the current value
//! (O(1) for a put); anything that changes the confirmed state or removes an op from the middle of the
//! story (ack, failure, discard, conflict, pull) recomputes the entity from scratch with [`fold`], so the
//! view can never drift from "confirmed + pending". Failed ops are left out: they were rolled back. Ops
//! held in conflict stay in: the user's change stands until the app resolves it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::Json;
use crate::op::{OpKind, OpRecord, OpState};

/// The last server-acknowledged state of one entity, as stored in the `docs` store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfirmedDoc {
    /// The entity's collection.
    pub collection: String,
    /// The entity's key.
    pub key: String,
    /// The server's version (its `ETag`, quotes included), when known.
    #[serde(default)]
    pub version: Option<String>,
    /// The document (`null` when deleted). Shared, not copied, with the view and the `Acked` event.
    #[serde(default)]
    pub doc: Json,
    /// The server deleted it: a tombstone, kept so an older version arriving later is recognised.
    #[serde(default)]
    pub deleted: bool,
    /// Our own latest acks of the entity, oldest first (at most eight), stored with the state the last
    /// one produced: an op another tab made before them follows them even after the leader that acked
    /// died (`core/src/engine/ack_chain.rs`). Empty for a document from the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<AckLink>,
}

/// One of our own acks of an entity ([`ConfirmedDoc::acks`]): the state the acked op was made on, and
/// the state it produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckLink {
    /// The `If-Match` the acked op was sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The acked op was sent with `If-None-Match: *`.
    #[serde(default, skip_serializing_if = "crate::op::is_false")]
    pub create_only: bool,
    /// The version the ack produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The ack left the entity deleted.
    #[serde(default, skip_serializing_if = "crate::op::is_false")]
    pub deleted: bool,
    /// When it was acked (engine time): a restore remembers the most recent chains.
    #[serde(default)]
    pub at: u64,
}

/// Applies a custom op to a document: `(name, current, payload) -> new document`, or `None` to leave
/// the document as it is. The runtime plugs in the app's registered mutation functions.
pub type MutatorFn = dyn FnMut(&str, Option<&Json>, &Json) -> Option<Json>;

/// The optional custom-op function, with a `Debug` the engine can derive through.
#[derive(Default)]
pub(crate) struct Mutator(Option<Box<MutatorFn>>);

impl Mutator {
    pub(crate) fn set(&mut self, f: Box<MutatorFn>) {
        self.0 = Some(f);
    }
}

impl fmt::Debug for Mutator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Mutator(set)"
        } else {
            "Mutator(none)"
        })
    }
}

/// An entity's view as the app reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewItem<'a> {
    /// The entity's key.
    pub key: &'a str,
    /// The optimistic document; `None` when it does not exist (never created, or deleted).
    pub value: Option<&'a Json>,
    /// The confirmed version the value builds on.
    pub version: Option<&'a str>,
    /// How many of the entity's ops are not yet acknowledged (failed ones excluded).
    pub pending: usize,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Confirmed {
    pub(crate) version: Option<String>,
    /// `None`: deleted (or never existed, with a version: a tombstone).
    pub(crate) doc: Option<Json>,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    confirmed: Option<Confirmed>,
    value: Option<Json>,
    pending: usize,
}

/// Every entity the app can read: confirmed by the server, touched by a pending op, or both. Per
/// collection a `BTreeMap`: looked up by `&str` without allocating, and already in key order for `list`.
#[derive(Debug, Default)]
pub(crate) struct View {
    collections: HashMap<Arc<str>, BTreeMap<Arc<str>, Entry>, FixedState>,
}

/// What an update did to an entity, so the engine can tell the app only about real changes.
#[derive(Debug, PartialEq)]
pub(crate) enum Change {
    Unchanged,
    Changed,
}

impl View {
    /// The confirmed state of an entity.
    pub(crate) fn confirmed(&self, collection: &str, key: &str) -> Option<&Confirmed> {
        self.entry(collection, key)?.confirmed.as_ref()
    }

    pub(crate) fn item<'a>(&'a self, collection: &str, key: &'a str) -> Option<ViewItem<'a>> {
        let entry = self.entry(collection, key)?;
        Some(item(key, entry))
    }

    /// The entities of a collection that exist in the view, by key.
    pub(crate) fn list<'a>(&'a self, collection: &str) -> impl Iterator<Item = ViewItem<'a>> + 'a {
        self.collections
            .get(collection)
            .into_iter()
            .flatten()
            .filter(|(_, entry)| entry.value.is_some())
            .map(|(key, entry)| item(key, entry))
    }

    /// Applies a newly enqueued op on top of the entity's current value.
    pub(crate) fn push_op(&mut self, op: &OpRecord, mutator: &mut Mutator) -> Change {
        let entry = self.entry_mut(&op.collection, &op.key);
        entry.value = apply(entry.value.take(), op, mutator);
        entry.pending += 1;
        Change::Changed
    }

    /// Sets the confirmed state of an entity and shows it, as a restore begins: the entity's ops are
    /// then applied on top with [`View::push_op`], in lane order.
    pub(crate) fn restore_confirmed(
        &mut self,
        collection: &Arc<str>,
        key: &Arc<str>,
        confirmed: Confirmed,
    ) {
        let entry = self.entry_mut(collection, key);
        entry.value = confirmed.doc.clone();
        entry.confirmed = Some(confirmed);
    }

    /// Replaces the confirmed state of an entity (no recompute: call [`View::refold`] after).
    pub(crate) fn set_confirmed(
        &mut self,
        collection: &Arc<str>,
        key: &Arc<str>,
        confirmed: Confirmed,
    ) {
        self.entry_mut(collection, key).confirmed = Some(confirmed);
    }

    /// Recomputes an entity from its confirmed state and `ops` (its lane, in order).
    pub(crate) fn refold<'a>(
        &mut self,
        collection: &Arc<str>,
        key: &Arc<str>,
        ops: impl Iterator<Item = &'a OpRecord>,
        mutator: &mut Mutator,
    ) -> Change {
        let entry = self.entry_mut(collection, key);
        let base = entry.confirmed.as_ref().and_then(|c| c.doc.clone());
        let (value, pending) = fold(base, ops, mutator);
        let changed = pending != entry.pending || !same(&value, &entry.value);
        entry.value = value;
        entry.pending = pending;
        let forget = entry.confirmed.is_none() && entry.pending == 0 && entry.value.is_none();
        if forget {
            self.remove(collection, key);
        }
        if changed {
            Change::Changed
        } else {
            Change::Unchanged
        }
    }

    fn entry(&self, collection: &str, key: &str) -> Option<&Entry> {
        self.collections.get(collection)?.get(key)
    }

    fn entry_mut(&mut self, collection: &Arc<str>, key: &Arc<str>) -> &mut Entry {
        // One search per map (each enqueue and each restored op comes here): the owned keys are
        // reference-count bumps, dropped again when the entity is already there.
        self.collections
            .entry(collection.clone())
            .or_default()
            .entry(key.clone())
            .or_default()
    }

    fn remove(&mut self, collection: &Arc<str>, key: &Arc<str>) {
        if let Some(entries) = self.collections.get_mut(&**collection) {
            entries.remove(&**key);
        }
    }
}

fn item<'a>(key: &'a str, entry: &'a Entry) -> ViewItem<'a> {
    ViewItem {
        key,
        value: entry.value.as_ref(),
        version: entry.confirmed.as_ref().and_then(|c| c.version.as_deref()),
        pending: entry.pending,
    }
}

fn same(a: &Option<Json>, b: &Option<Json>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Does this op count in the view? Failed ops were rolled back; everything else is the user's intent.
pub(crate) fn in_view(op: &OpRecord) -> bool {
    op.state != OpState::Failed
}

/// The view of one entity: `base` (the confirmed document, `None` if absent) with `ops` applied in
/// order. Returns the value and how many ops counted.
pub(crate) fn fold<'a>(
    base: Option<Json>,
    ops: impl Iterator<Item = &'a OpRecord>,
    mutator: &mut Mutator,
) -> (Option<Json>, usize) {
    let mut value = base;
    let mut pending = 0;
    for op in ops.filter(|op| in_view(op)) {
        value = apply(value, op, mutator);
        pending += 1;
    }
    (value, pending)
}

/// A JSON merge patch (RFC 7396) applied to a document (an absent one counts as `{}`): the document a
/// patch op makes, as the view computes it. The runtime gives it to the app's validator.
pub fn merged(current: Option<&Json>, patch: &Json) -> Json {
    let mut doc = current.map_or_else(|| Value::Object(Default::default()), Json::value);
    json_patch::merge(&mut doc, &patch.value());
    Json::from(doc)
}

/// One op applied to a document: a put replaces, a patch merges (RFC 7396), a delete removes, a custom
/// op goes through the app's mutation function (without one it changes nothing).
pub(crate) fn apply(current: Option<Json>, op: &OpRecord, mutator: &mut Mutator) -> Option<Json> {
    match &op.kind {
        OpKind::Put => Some(op.payload.clone()),
        OpKind::Patch => Some(merged(current.as_ref(), &op.payload)),
        OpKind::Delete => None,
        OpKind::Custom { name } => match mutator.0.as_mut() {
            Some(f) => match f(name, current.as_ref(), &op.payload) {
                Some(doc) => Some(doc),
                None => current,
            },
            None => current,
        },
    }
}

/// How two versions of one document are ordered, when they can be: integer versions (the reference
/// server's `"7"`; docs/PROTOCOL.md §2 asks every server for them) compare as numbers, and equal versions
/// are equal. Opaque ETags carry no order: `None`.
pub fn version_order(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    match (version_number(a), version_number(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ if a == b => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// Whether a version from the server supersedes the one we hold: numerically when both are integer
/// versions, otherwise whenever it differs (opaque ETags carry no order, and the server is the source of
/// truth). Used for pulled documents, which the server sends in commit order.
pub fn is_newer(incoming: Option<&str>, current: Option<&str>) -> bool {
    let Some(incoming) = incoming else {
        return current.is_none();
    };
    let Some(current) = current else {
        return true;
    };
    version_order(incoming, current).is_none_or(|o| o == std::cmp::Ordering::Greater)
}

/// Whether the state an answer to one of our writes brings replaces the confirmed state held. An
/// ordered version replaces only a lower one. Opaque ETags carry no order: a fresh answer wins, since
/// it reports our own write just now; a **replayed** one never does, since it may be older than what a
/// pull delivered after it. An answer without any version never replaces a versioned state (a delete
/// answered 410 "already gone" says nothing newer than the tombstone held).
pub fn supersedes(incoming: Option<&str>, held: Option<&str>, replayed: bool) -> bool {
    match (incoming, held) {
        (Some(a), Some(b)) => match version_order(a, b) {
            Some(order) => order == std::cmp::Ordering::Greater,
            None => !replayed,
        },
        (_, None) => true,
        (None, Some(_)) => false,
    }
}

/// Whether `etag` is a strong entity-tag (`"3"`, `"abc"`; RFC 9110 §8.8.3), usable in `If-Match`.
pub fn is_strong_etag(etag: &str) -> bool {
    let Some(inner) = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')) else {
        return false;
    };
    etag.len() >= 2
        && inner
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
}

fn version_number(version: &str) -> Option<u64> {
    version
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_versions_compare_as_numbers() {
        assert!(is_newer(Some("\"10\""), Some("\"9\"")));
        assert!(!is_newer(Some("\"9\""), Some("\"10\"")));
        assert!(!is_newer(Some("\"9\""), Some("\"9\"")));
        assert!(is_newer(Some("\"1\""), None));
        assert!(!is_newer(None, Some("\"1\"")));
        // Opaque ETags: any different one wins.
        assert!(is_newer(Some("\"abc\""), Some("\"xyz\"")));
        assert!(!is_newer(Some("\"abc\""), Some("\"abc\"")));
    }

    #[test]
    fn only_strong_entity_tags_serve_as_preconditions() {
        assert!(is_strong_etag("\"3\""));
        assert!(is_strong_etag("\"abc-1\""));
        assert!(is_strong_etag("\"\""));
        assert!(!is_strong_etag("W/\"3\""));
        assert!(!is_strong_etag("abc"));
        assert!(!is_strong_etag("\"a\"b\""));
        assert!(!is_strong_etag("\"a b\""));
        assert!(!is_strong_etag("\""));
    }

    #[test]
    fn an_answer_to_our_write_never_puts_an_older_version_back() {
        // Ordered: only higher wins, replayed or not.
        assert!(supersedes(Some("\"4\""), Some("\"3\""), false));
        assert!(!supersedes(Some("\"3\""), Some("\"5\""), false));
        assert!(!supersedes(Some("\"3\""), Some("\"5\""), true));
        assert!(!supersedes(Some("\"5\""), Some("\"5\""), false));
        // Opaque: a fresh answer wins, a replay does not.
        assert!(supersedes(Some("\"b\""), Some("\"a\""), false));
        assert!(!supersedes(Some("\"b\""), Some("\"a\""), true));
        // Nothing held: anything wins.
        assert!(supersedes(Some("\"1\""), None, true));
        assert!(supersedes(None, None, true));
        assert!(!supersedes(None, Some("\"2\""), true));
        assert!(!supersedes(None, Some("\"2\""), false));
    }
}
