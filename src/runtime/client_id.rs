//! The default `Outbox-Client-Id`: made once per outbox and kept in IndexedDB, so the server scopes this
//! client's idempotency keys (docs/PROTOCOL.md §3) without the app inventing an id.

use outbox_core::Engine;
use wasm_bindgen::JsValue;

use crate::error::Result;
use crate::store::{IdbStore, Write};

/// The meta key it is kept under.
pub(super) const CLIENT_ID_META_KEY: &str = "client_id";

/// The stored client id (`stored`, as read at open), or a new one, stored before it is returned: it scopes keys the server keeps, so
/// a request must never carry an id a reload would forget.
///
/// A database that holds ops which may have been applied but no id was written by a release that sent
/// none: those keys live in the server's unscoped space, and resending them under a new id could apply
/// them twice. Such an outbox goes on without an id (`None`) until those ops are settled.
pub(super) async fn stored_or_new(
    store: &IdbStore,
    stored: Option<String>,
    engine: &mut Engine,
) -> Result<Option<String>> {
    if let Some(id) = stored {
        return Ok(Some(id));
    }
    if engine.ops().any(|op| op.maybe_applied) {
        return Ok(None);
    }
    let id = engine.random_uuid().to_string();
    let write = Write::PutMeta {
        key: CLIENT_ID_META_KEY.to_owned(),
        value: JsValue::from_str(&id),
    };
    store.commit(&[write]).await?;
    Ok(Some(id))
}
