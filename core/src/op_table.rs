//! `OpTable`: the engine's ops by id, stored in a slab.
//!
//! A `HashMap<OpId, Entry>` either stores entries inline (a cold slot of a big table on every insert)
//! or boxes them (an allocation per op, freed `n` ops later, long after it left the cache). The slab
//! reuses the slot freed most recently, which is still in cache, so enqueue → ack touches little cold
//! memory even with 100k ops queued. The hash index holds only small `OpId -> slot` pairs.

use std::collections::HashMap;
use std::ops::Index;

use foldhash::fast::FixedState;

use crate::op::OpId;

/// The engine's hash maps: a fast fixed-seed hasher (deterministic, and far cheaper than SipHash).
pub(crate) type FastMap<K, V> = HashMap<K, V, FixedState>;

#[derive(Debug)]
pub(crate) struct OpTable<T> {
    index: FastMap<OpId, u32>,
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for OpTable<T> {
    fn default() -> Self {
        OpTable {
            index: FastMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> OpTable<T> {
    pub(crate) fn get(&self, id: &OpId) -> Option<&T> {
        let slot = *self.index.get(id)?;
        self.slots[slot as usize].as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: &OpId) -> Option<&mut T> {
        let slot = *self.index.get(id)?;
        self.slots[slot as usize].as_mut()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub(crate) fn contains_key(&self, id: &OpId) -> bool {
        self.index.contains_key(id)
    }

    /// Makes room for `additional` more entries at once. A restore knows how many ops it reads: grown
    /// one doubling at a time, the slab and the index would each be copied about `log2(n)` times and
    /// hold an old and a new copy side by side at the peak, which the wasm memory keeps for good.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let reusable = self.free.len();
        self.slots
            .reserve_exact(additional.saturating_sub(reusable));
        self.index.reserve(additional);
    }

    /// Inserts a value for an id that is not present.
    pub(crate) fn insert(&mut self, id: OpId, value: T) {
        debug_assert!(!self.index.contains_key(&id));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(value);
                slot
            }
            None => {
                self.slots.push(Some(value));
                u32::try_from(self.slots.len() - 1).expect("fewer than 4 billion ops")
            }
        };
        self.index.insert(id, slot);
    }

    pub(crate) fn remove(&mut self, id: &OpId) -> Option<T> {
        let slot = self.index.remove(id)?;
        self.free.push(slot);
        self.slots[slot as usize].take()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(Option::as_ref)
    }
}

impl<T> Index<&OpId> for OpTable<T> {
    type Output = T;
    fn index(&self, id: &OpId) -> &T {
        self.get(id).expect("op exists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id(n: u128) -> OpId {
        OpId(Uuid::from_u128(n))
    }

    #[test]
    fn insert_get_remove_and_slot_reuse() {
        let mut t = OpTable::default();
        t.insert(id(1), "a");
        t.insert(id(2), "b");
        assert_eq!(t.get(&id(1)), Some(&"a"));
        assert_eq!(t.remove(&id(1)), Some("a"));
        assert_eq!(t.get(&id(1)), None);
        assert_eq!(t.remove(&id(1)), None);
        t.insert(id(3), "c");
        assert_eq!(t.slots.len(), 2, "the freed slot was reused");
        *t.get_mut(&id(3)).unwrap() = "C";
        let mut all: Vec<&str> = t.values().copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec!["C", "b"]);
        assert!(t.contains_key(&id(2)) && !t.contains_key(&id(1)));
        assert_eq!(t[&id(2)], "b");
    }

    #[test]
    fn reserve_sizes_the_slab_once_for_what_a_restore_reads() {
        let mut t = OpTable::default();
        t.insert(id(0), 0u64);
        t.remove(&id(0));
        t.reserve(1_000);
        // One free slot is reused, so 999 new ones are enough, and no insert moves the slab.
        let (capacity, buffer) = (t.slots.capacity(), t.slots.as_ptr());
        assert!(capacity >= 1_000, "{capacity}");
        assert!(
            capacity < 1_500,
            "reserved exactly, not doubled: {capacity}"
        );
        for n in 1..=1_000 {
            t.insert(id(n), n as u64);
        }
        assert_eq!(t.slots.as_ptr(), buffer, "the slab was not reallocated");
        assert_eq!(t.slots.capacity(), capacity);
    }
}
