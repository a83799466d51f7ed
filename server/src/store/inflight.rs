//! Keys in flight in one process (the SQLite store). A second request with the same key gets 409
//! `idempotency-key-in-use` instead of waiting. In memory is enough because a SQLite file has one
//! server process: nothing is persisted until the effect commits, so a crash leaves no stale
//! claim. (PostgreSQL claims keys with transaction-scoped advisory locks instead, which every
//! instance sees.)

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct InFlight(Mutex<HashSet<(String, String)>>);

/// The keys one request holds; released on drop.
pub struct Reservation {
    registry: Arc<InFlight>,
    held: Vec<(String, String)>,
}

impl Reservation {
    pub fn new(registry: Arc<InFlight>) -> Self {
        Reservation {
            registry,
            held: Vec::new(),
        }
    }

    /// True if this request now holds the key (also when it already did: a batch may repeat a
    /// key, and the second op then replays the first).
    pub fn acquire(&mut self, scope: &str, key: &str) -> bool {
        let id = (scope.to_owned(), key.to_owned());
        if self.held.contains(&id) {
            return true;
        }
        let mut set = self.registry.0.lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(id.clone()) {
            self.held.push(id);
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut set = self.registry.0.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.held {
            set.remove(id);
        }
    }
}
