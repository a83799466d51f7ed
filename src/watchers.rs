//! `watch(collection, cb)` and `watchDoc(collection, key, cb)`: callbacks on view changes.
//!
//! Changes are collected over one engine call and delivered once at the end, so a pull that brings 100
//! documents of a collection calls its watcher once, and one enqueue calls each affected watcher exactly
//! once.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// The entities (collection, key) whose view changed, in any order, perhaps more than once: the watchers
/// only ask whether theirs is among them, so a list does (a set type would cost the wasm its own code).
pub type Changed = Vec<(Arc<str>, Arc<str>)>;

use js_sys::Function;

/// One registered watcher.
struct Watcher {
    id: u32,
    collection: String,
    /// `None`: the whole collection; `Some(key)`: one document.
    key: Option<String>,
    callback: Function,
}

/// The registry.
#[derive(Default)]
pub struct Watchers {
    watchers: RefCell<Vec<Watcher>>,
    next_id: Cell<u32>,
}

/// What to call after an engine call: collection watchers with the collection's list, document
/// watchers with the document.
pub enum Notify {
    /// Call with `list(collection)`.
    Collection(Function, String),
    /// Call with `get(collection, key)`.
    Doc(Function, String, String),
}

impl Watchers {
    /// Registers a watcher; returns its id.
    pub fn add(&self, collection: String, key: Option<String>, callback: Function) -> u32 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        self.watchers.borrow_mut().push(Watcher {
            id,
            collection,
            key,
            callback,
        });
        id
    }

    /// Removes a watcher.
    pub fn remove(&self, id: u32) {
        self.watchers.borrow_mut().retain(|w| w.id != id);
    }

    /// The collections watched, whole or one document at a time.
    pub fn collections(&self) -> Vec<String> {
        // Through a set, inserted one by one: a sort of strings would be a sort of its own in the wasm.
        let mut names = std::collections::BTreeSet::new();
        for watcher in self.watchers.borrow().iter() {
            names.insert(watcher.collection.clone());
        }
        names.into_iter().collect()
    }

    /// Removes every watcher.
    pub fn clear(&self) {
        self.watchers.borrow_mut().clear();
    }

    /// The callbacks due for a set of changed entities: each collection watcher once, each document
    /// watcher once.
    pub fn due(&self, changed: &Changed) -> Vec<Notify> {
        if changed.is_empty() {
            return Vec::new();
        }
        self.watchers
            .borrow()
            .iter()
            .filter_map(|w| match &w.key {
                None => changed
                    .iter()
                    .any(|(c, _)| **c == *w.collection)
                    .then(|| Notify::Collection(w.callback.clone(), w.collection.clone())),
                Some(key) => changed
                    .iter()
                    .any(|(c, k)| **c == *w.collection && **k == **key)
                    .then(|| Notify::Doc(w.callback.clone(), w.collection.clone(), key.clone())),
            })
            .collect()
    }
}
