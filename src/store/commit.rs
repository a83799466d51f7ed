//! A commit's writes, issued in one readwrite transaction with plain IndexedDB calls.
//!
//! The IndexedDB wrapper crate builds each transaction through a builder (its scope, mode and options
//! made into JS values anew) and gives every request and transaction their own Rust closures for their
//! events. For the one or two writes of a single enqueue or ack, that was a good part of the commit's CPU
//! time. Here the scope and options are JS values made once, the requests have no listeners (a failed
//! request aborts the transaction, which is what is awaited), and the transaction's `complete` and
//! `abort` settle one promise.

use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use js_sys::{Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbKeyRange, IdbTransaction};

use super::{schema, Durability, StoreError, Write};

#[wasm_bindgen]
extern "C" {
    /// An `IDBDatabase`, seen only for the call below.
    type Connection;

    /// `IDBDatabase.transaction(scope, mode, options)` with ready-made JS arguments.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with(
        this: &Connection,
        scope: &JsValue,
        mode: &JsValue,
        options: &JsValue,
    ) -> Result<IdbTransaction, JsValue>;
}

thread_local! {
    /// The scopes a commit opens: the outbox's state, the state and the history, the history alone.
    /// The history store is in the scope only when written: a commit of the outbox's state never waits
    /// for a history-only one, nor the other way round.
    static SCOPES: [JsValue; 3] = [
        names(&schema::ALL_STORES),
        names(&schema::ALL_STORES_AND_HISTORY),
        names(&[schema::HISTORY]),
    ];
    /// `{ durability: "relaxed" }` and `{ durability: "strict" }`.
    static OPTIONS: [JsValue; 2] = [durability("relaxed"), durability("strict")];
    static READWRITE: JsValue = JsValue::from_str("readwrite");
}

fn names(stores: &[&str]) -> JsValue {
    stores
        .iter()
        .map(|s| JsValue::from_str(s))
        .collect::<Array>()
        .into()
}

fn durability(value: &str) -> JsValue {
    let options = Object::new();
    // Setting a property on a new plain object cannot fail.
    let _ = Reflect::set(&options, &"durability".into(), &value.into());
    options.into()
}

/// Applies `writes` in one transaction on `db` and waits for its `complete` event. A write refused at
/// once aborts the transaction, so nothing of the commit is stored.
pub(super) async fn commit_once(
    db: &Database,
    durability: Durability,
    writes: &[Write],
) -> Result<(), StoreError> {
    let history = writes.iter().any(Write::is_history);
    let state = writes.iter().any(|w| !w.is_history());
    let scope = match (state, history) {
        (true, false) => 0,
        (true, true) => 1,
        (false, _) => 2,
    };
    let options = usize::from(durability == Durability::Strict);
    let connection = db.as_sys().unchecked_ref::<Connection>();
    let tx = SCOPES
        .with(|scopes| {
            OPTIONS.with(|all| {
                READWRITE
                    .with(|mode| connection.transaction_with(&scopes[scope], mode, &all[options]))
            })
        })
        .map_err(StoreError::from_js)?;
    // Listening before any request is issued: none can end the transaction before this.
    let done = Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    });
    if let Err(error) = issue(&tx, writes) {
        let _ = tx.abort();
        // Awaited so the rejection is handled (no "uncaught in promise" for the app to see), and so
        // the abort has finished when the error is reported.
        let _ = JsFuture::from(done).await;
        return Err(StoreError::from_js(error));
    }
    // Ends the transaction now instead of at the end of the task: nothing else joins it. `commit()` is
    // in IndexedDB 3.0 and every current engine (web-sys marks it deprecated); where it is missing, the
    // call fails and the transaction ends with the task as before.
    #[allow(deprecated)]
    let _ = tx.commit();
    match JsFuture::from(done).await {
        Ok(_) => Ok(()),
        // The abort event says only "aborted"; the transaction's error tells a full disk
        // (QuotaExceededError) from anything else.
        Err(event) => Err(StoreError::from_js(tx.error().map_or(event, JsValue::from))),
    }
}

fn issue(tx: &IdbTransaction, writes: &[Write]) -> Result<(), JsValue> {
    for write in writes {
        match write {
            Write::PutOp { id, record } => {
                tx.object_store(schema::OPS)?
                    .put_with_key(record, &id.into())?;
            }
            Write::DeleteOp { id } => {
                tx.object_store(schema::OPS)?.delete(&id.into())?;
            }
            Write::PutDoc {
                collection,
                key,
                record,
            } => {
                let doc_key = Array::of2(&collection.into(), &key.into());
                tx.object_store(schema::DOCS)?
                    .put_with_key(record, &doc_key)?;
            }
            Write::PutMeta { key, value } => {
                tx.object_store(schema::META)?
                    .put_with_key(value, &key.into())?;
            }
            Write::DeleteMeta { key } => {
                tx.object_store(schema::META)?.delete(&key.into())?;
            }
            Write::PutHistory { id, record } => {
                tx.object_store(schema::HISTORY)?
                    .put_with_key(record, &(*id as f64).into())?;
            }
            Write::DeleteHistoryBelow { id } => {
                let below = IdbKeyRange::upper_bound_with_open(&(*id as f64).into(), true)?;
                tx.object_store(schema::HISTORY)?.delete(&below)?;
            }
        }
    }
    Ok(())
}
