//! Lanes: one FIFO per entity, so ops on one entity reach the server in enqueue order.
//!
//! Only a lane's head is ever sent, so at most one op per lane is in flight, and a failed or conflicted
//! head halts its lane alone.
//!
//! The index is a `HashTable` keyed by the hash of (collection, key). It stores no entity strings: an
//! existing lane is recognised by comparing the entity of its head op (which the caller looks up), and
//! the hot paths (ack, discard, scheduling) find a lane by its head op id. A lane with one op (the
//! common case) allocates nothing beyond its table slot.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use crate::op::OpId;

/// The ops of one entity, oldest first. Never empty: a lane is dropped with its last op.
#[derive(Debug)]
pub(crate) struct Lane {
    hash: u64,
    head: OpId,
    /// Ops behind the head. Boxed so the common one-op lane keeps the table slot small (32 bytes
    /// instead of 56), which keeps the lane table in cache with 100k lanes.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<OpId>>>,
}

impl Lane {
    /// The ops in lane order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = OpId> + '_ {
        std::iter::once(self.head).chain(self.rest.iter().flat_map(|r| r.iter().copied()))
    }

    /// How many ops the lane holds (never 0).
    pub(crate) fn len(&self) -> usize {
        1 + self.rest.as_ref().map_or(0, |r| r.len())
    }
}

/// All lanes.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    table: HashTable<Lane>,
    hasher: FixedState,
}

impl Lanes {
    /// The hash of an entity; ops keep it so they can find their lane without hashing strings again.
    pub(crate) fn hash(&self, collection: &str, key: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        collection.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    }

    /// Appends `id` to the entity's lane, creating it if needed. `same_entity(head)` tells whether an
    /// existing lane (found by hash) belongs to this entity. Returns true when `id` became the head.
    pub(crate) fn push(
        &mut self,
        hash: u64,
        id: OpId,
        mut same_entity: impl FnMut(OpId) -> bool,
    ) -> bool {
        if let Some(lane) = self.table.find_mut(hash, |l| same_entity(l.head)) {
            lane.rest.get_or_insert_with(Box::default).push_back(id);
            return false;
        }
        self.table.insert_unique(
            hash,
            Lane {
                hash,
                head: id,
                rest: None,
            },
            |l| l.hash,
        );
        true
    }

    /// True when `id` heads its lane.
    pub(crate) fn is_head(&self, hash: u64, id: OpId) -> bool {
        self.table.find(hash, |l| l.head == id).is_some()
    }

    /// Removes the head `id`; returns the new head, or `None` when the lane is gone.
    pub(crate) fn pop_head(&mut self, hash: u64, id: OpId) -> Option<OpId> {
        let Ok(mut entry) = self.table.find_entry(hash, |l| l.head == id) else {
            return None;
        };
        let lane = entry.get_mut();
        let Some(next) = lane.rest.as_mut().and_then(|r| r.pop_front()) else {
            entry.remove();
            return None;
        };
        lane.head = next;
        if lane.rest.as_ref().is_some_and(|r| r.is_empty()) {
            lane.rest = None;
        }
        Some(next)
    }

    /// Puts `id` at position `at` of the entity's lane (0 = the new head; the lane's length or more =
    /// the end), creating the lane if needed. O(lane length): only adopting another tab's op needs it.
    /// Returns true when `id` became the head.
    pub(crate) fn insert_at(
        &mut self,
        hash: u64,
        id: OpId,
        at: usize,
        mut same_entity: impl FnMut(OpId) -> bool,
    ) -> bool {
        let Some(lane) = self.table.find_mut(hash, |l| same_entity(l.head)) else {
            return self.push(hash, id, |_| false);
        };
        let rest = lane.rest.get_or_insert_with(Box::default);
        if at == 0 {
            rest.push_front(std::mem::replace(&mut lane.head, id));
            return true;
        }
        rest.insert((at - 1).min(rest.len()), id);
        false
    }

    /// Removes `id` from behind its lane's head. O(lane length): only `discard` needs it.
    pub(crate) fn remove_behind_head(&mut self, hash: u64, id: OpId) {
        let behind = |l: &Lane| l.rest.as_ref().is_some_and(|r| r.contains(&id));
        if let Some(lane) = self.table.find_mut(hash, behind) {
            if let Some(rest) = lane.rest.as_mut() {
                rest.retain(|o| *o != id);
                if rest.is_empty() {
                    lane.rest = None;
                }
            }
        }
    }

    /// The lane of an entity.
    pub(crate) fn get(
        &self,
        hash: u64,
        mut same_entity: impl FnMut(OpId) -> bool,
    ) -> Option<&Lane> {
        self.table.find(hash, |l| same_entity(l.head))
    }

    /// How many lanes there are: one per entity with ops.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every lane's head.
    pub(crate) fn heads(&self) -> impl Iterator<Item = OpId> + '_ {
        self.table.iter().map(|l| l.head)
    }
}
