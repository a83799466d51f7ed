//! A restore's read, in parts, so the reading and the caller's work on what was read overlap.
//!
//! A restore reads every op record and then parses each one. With one `getAll`, the parse starts only
//! once the last record has arrived. Asked for as sixteen `getAll`s of key ranges at once, in one
//! transaction, IndexedDB (another process) reads the next part while this thread parses the one
//! before, so most of the parsing hides under the reading. The same transaction reads the meta records
//! first (a restore needs them before the first op record), then the confirmed documents, and the sync
//! history last: a tab's whole state is one snapshot, and an open waits for one transaction instead of
//! two.
//!
//! It does not ask for the ops' `count()`: Chromium counts by reading every record (15 ms for 10,000
//! ops, 150 ms for 100,000, a tenth of the whole restore), and the parts are of about one size, so the
//! first one says nearly as much ([`Part::Values`]).

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbKeyRange, IdbRequest};

use super::schema::{DOCS, HISTORY, META, OPS};
use super::StoreError;

/// Where the parts end: op ids are UUIDs in lowercase hex, so their first characters split them into
/// sixteen parts of about one size. The ranges cover every key whatever it is: the first takes all
/// below `"1"`, the last all from `"f"` on.
const BOUNDS: [&str; 15] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
];

/// What a restore's read hands its reader, in this order. It is one transaction over the meta, op,
/// document and history stores: one snapshot, which no other tab's commit can split.
pub enum Part {
    /// Every meta record as `(name, value)`, handed over first: a restore needs some of them before
    /// the first op record. A read that starts over (on a new connection) hands everything again from
    /// here, so a reader starts afresh at it.
    Meta(Vec<(JsValue, JsValue)>),
    /// The op records of the next part, in key order, and how many parts come after it. The parts
    /// are of about one size (op ids are random), so the first one times the number of parts is the
    /// number of records to within a few percent: enough to size what a reader fills, and to show how
    /// far a restore has come.
    Values { values: Array, parts_left: usize },
    /// Every confirmed document.
    Docs(Array),
    /// Every stored history entry, oldest first, handed over last.
    History(Array),
}

/// What a restore reads, handed to `take` in parts ([`Part`]).
pub(super) async fn load_in_parts(
    db: &IdbDatabase,
    take: &impl Fn(Part),
) -> Result<(), StoreError> {
    let names = Array::of4(&META.into(), &OPS.into(), &DOCS.into(), &HISTORY.into());
    let tx = db
        .transaction_with_str_sequence(&names)
        .map_err(StoreError::from_js)?;
    let store = |name| tx.object_store(name).map_err(StoreError::from_js);
    let (meta, ops, docs, history) = (store(META)?, store(OPS)?, store(DOCS)?, store(HISTORY)?);
    // All asked for at once, and answered in this order: a transaction's requests complete in order.
    let asked = |request: std::result::Result<IdbRequest, JsValue>| {
        let request = request.map_err(StoreError::from_js)?;
        Ok::<_, StoreError>((done(&request), request))
    };
    let meta_keys = asked(meta.get_all_keys())?;
    let meta_values = asked(meta.get_all())?;
    let mut parts = Vec::with_capacity(BOUNDS.len() + 1);
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
        parts.push(asked(ops.get_all_with_key(&range))?);
    }
    let docs = asked(docs.get_all())?;
    let history = asked(history.get_all())?;
    let keys: Array = answer(meta_keys).await?.unchecked_into();
    let values: Array = answer(meta_values).await?.unchecked_into();
    take(Part::Meta(keys.iter().zip(values.iter()).collect()));
    let total = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        take(Part::Values {
            values: answer(part).await?.unchecked_into(),
            parts_left: total - i - 1,
        });
    }
    take(Part::Docs(answer(docs).await?.unchecked_into()));
    take(Part::History(answer(history).await?.unchecked_into()));
    Ok(())
}

/// The result of a request once it has settled, or its error.
async fn answer((done, request): (Promise, IdbRequest)) -> Result<JsValue, StoreError> {
    let _ = JsFuture::from(done).await;
    result(&request)
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
