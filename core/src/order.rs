//! Sorting through one copy of the standard sort.
//!
//! Each `sort_by_key` on another element type is another copy of the standard library's sort in the
//! wasm module: nine of them were 38 KB, a twentieth of it. [`sort_by_key`] sorts `(key, position)`
//! pairs of one type instead and then moves the elements into that order, so the sort itself is
//! compiled once, whatever is sorted.

/// What [`sort_by_key`] orders by, compared as a tuple: `(group, number, id)`. An [`crate::OpId`]
/// goes in as its `u128` ([`crate::OpId::sort_key`]), which orders as the id does.
pub type SortKey = (u64, u64, u128);

/// Sorts `items` by `key`, stably: items with equal keys keep their order.
pub fn sort_by_key<T>(items: &mut [T], mut key: impl FnMut(&T) -> SortKey) {
    assert!(items.len() < DONE as usize, "too many items to sort");
    let mut order: Vec<(SortKey, u32)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (key(item), i as u32))
        .collect();
    sort_pairs(&mut order);
    // `from[k]`: the position the item that belongs at `k` holds now. Each cycle of that permutation is
    // walked once, by swaps, so no item is copied and nothing of `T` is allocated.
    let mut from: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
    for start in 0..from.len() {
        if from[start] & DONE != 0 {
            continue;
        }
        let mut at = start;
        loop {
            let source = (from[at] & !DONE) as usize;
            from[at] |= DONE;
            if source == start {
                break;
            }
            items.swap(at, source);
            at = source;
        }
    }
}

/// Marks a position of `from` whose item is in place.
const DONE: u32 = 1 << 31;

/// The one sort. The position in each pair breaks ties between equal keys, so the unstable sort gives
/// the stable order.
#[inline(never)]
fn sort_pairs(pairs: &mut [(SortKey, u32)]) {
    pairs.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sorts_as_the_standard_stable_sort_does(
            items in proptest::collection::vec((0u64..4, 0u64..6, 0u8..3), 0..200),
        ) {
            let mut expected = items.clone();
            expected.sort_by_key(|&(a, b, _)| (a, b));
            let mut sorted = items;
            sort_by_key(&mut sorted, |&(a, b, _)| (a, b, 0));
            prop_assert_eq!(sorted, expected);
        }
    }

    #[test]
    fn the_id_part_orders_as_op_ids_do() {
        let ids: Vec<crate::OpId> = [3u128, 1 << 100, 2, u128::MAX, 0]
            .into_iter()
            .map(|n| crate::OpId(uuid::Uuid::from_u128(n)))
            .collect();
        let mut expected = ids.clone();
        expected.sort();
        let mut sorted = ids;
        sort_by_key(&mut sorted, |id| (0, 0, id.sort_key()));
        assert_eq!(sorted, expected);
    }
}
