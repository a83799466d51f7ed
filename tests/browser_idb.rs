//! Browser tests for the IndexedDB layer, run in headless Chromium by `wasm-bindgen-test-runner`.
//! Each test uses a fresh database name so tests never see each other's data.
#![cfg(target_arch = "wasm32")]

use outbox_sync::idb::{IdbStore, SCHEMA_VERSION};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn fresh_db_name(test: &str) -> String {
    format!("outbox-test-{test}-{}", js_sys::Math::random().to_bits())
}

#[wasm_bindgen_test]
async fn writes_and_reads_back_across_a_reopen() {
    let name = fresh_db_name("roundtrip");
    let store = IdbStore::open(&name).await.expect("open");
    assert_eq!(store.version(), SCHEMA_VERSION);
    assert_eq!(store.get_meta("client_id").await.expect("get"), None);

    store.put_meta("client_id", "c-123").await.expect("put");
    assert_eq!(
        store.get_meta("client_id").await.expect("get").as_deref(),
        Some("c-123")
    );

    // A reload opens a new connection: the committed value must still be there.
    store.close();
    let reopened = IdbStore::open(&name).await.expect("reopen");
    assert_eq!(
        reopened
            .get_meta("client_id")
            .await
            .expect("get")
            .as_deref(),
        Some("c-123")
    );
    reopened
        .put_meta("client_id", "c-456")
        .await
        .expect("overwrite");
    assert_eq!(
        reopened
            .get_meta("client_id")
            .await
            .expect("get")
            .as_deref(),
        Some("c-456")
    );
    reopened.close();
}

#[wasm_bindgen_test]
fn version_is_the_crate_version() {
    assert_eq!(outbox_sync::version(), env!("CARGO_PKG_VERSION"));
}
