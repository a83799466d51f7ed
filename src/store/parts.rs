//! Reading a whole store in parts, so the reading and the caller's work on what was read overlap.
//!
//! A restore reads every op record and then parses each one. With one `getAll`, the parse starts only
//! once the last record has arrived. Asked for as sixteen `getAll`s of key ranges at once, in one
//! transaction, IndexedDB (another process) reads the next part while this thread parses the one
//! before, so most of the parsing hides under the reading. The store's count comes first, so the reader
//! can fill one list sized for everything instead of a list per part copied into one at the end.

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbKeyRange, IdbRequest};

use super::StoreError;

/// Where the parts end: op ids are UUIDs in lowercase hex, so their first characters split them into
/// sixteen parts of about one size. The ranges cover every key whatever it is: the first takes all
/// below `"1"`, the last all from `"f"` on.
const BOUNDS: [&str; 15] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
];

/// What a read in parts hands its reader, in order.
pub enum Part {
    /// How many values the whole store holds, handed over first: a reader can size what it fills
    /// once. A read that starts over (on a new connection) hands it again: the reader starts afresh.
    Count(usize),
    /// The values of the next part, in key order.
    Values(Array),
}

/// Every value of the store `name`, in key order, handed to `take` a part at a time after their count
/// ([`Part`]).
pub(super) async fn load_in_parts(
    db: &IdbDatabase,
    name: &str,
    take: &impl Fn(Part),
) -> Result<(), StoreError> {
    let tx = db.transaction_with_str(name).map_err(StoreError::from_js)?;
    let store = tx.object_store(name).map_err(StoreError::from_js)?;
    // Asked for first, so it is answered first: a transaction's requests complete in order.
    let count = store.count().map_err(StoreError::from_js)?;
    let counted = done(&count);
    let mut requests = Vec::with_capacity(BOUNDS.len() + 1);
    for i in 0..=BOUNDS.len() {
        let lower = i.checked_sub(1).map(|j| JsValue::from_str(BOUNDS[j]));
        let upper = BOUNDS.get(i).map(|b| JsValue::from_str(b));
        let range = match (lower, upper) {
            (None, Some(upper)) => IdbKeyRange::upper_bound_with_open(&upper, true),
            (Some(lower), Some(upper)) => {
                IdbKeyRange::bound_with_lower_open_and_upper_open(&lower, &upper, false, true)
            }
            (Some(lower), None) => IdbKeyRange::lower_bound(&lower),
            (None, None) => unreachable!("there are bounds"),
        }
        .map_err(StoreError::from_js)?;
        let request = store
            .get_all_with_key(&range)
            .map_err(StoreError::from_js)?;
        requests.push((done(&request), request));
    }
    let _ = JsFuture::from(counted).await;
    take(Part::Count(result(&count)?.as_f64().unwrap_or(0.0) as usize));
    for (done, request) in requests {
        let _ = JsFuture::from(done).await;
        take(Part::Values(result(&request)?.unchecked_into()));
    }
    Ok(())
}

/// The result of a settled request, or its error.
fn result(request: &IdbRequest) -> Result<JsValue, StoreError> {
    if let Ok(Some(error)) = request.error() {
        return Err(StoreError::from_js(error.into()));
    }
    request.result().map_err(StoreError::from_js)
}

/// Settles when `request` succeeds or fails (it never rejects: a failed part ends the read, and the
/// parts after it, failing with it, would otherwise be rejections no one handles).
fn done(request: &IdbRequest) -> Promise {
    Promise::new(&mut |resolve, _| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&resolve));
    })
}
