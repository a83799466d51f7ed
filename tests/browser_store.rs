//! Browser tests for `IdbStore`, run in headless Chromium by `wasm-bindgen-test-runner`.
//! Real IndexedDB, no mocks; each test uses a fresh database name so tests never see each other's data.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use outbox_sync::store::{Durability, IdbStore, Part, StoreError, Write, SCHEMA_VERSION};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn fresh_db_name(test: &str) -> String {
    format!("outbox-test-{test}-{}", js_sys::Math::random().to_bits())
}

fn put_op(id: &str, value: &str) -> Write {
    Write::PutOp {
        id: id.to_owned(),
        record: JsValue::from_str(value),
    }
}

fn strings(values: Vec<JsValue>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| v.as_string().expect("a string record"))
        .collect()
}

#[wasm_bindgen_test]
async fn commits_survive_a_reopen() {
    let name = fresh_db_name("reopen");
    let store = IdbStore::open(&name, Durability::Relaxed)
        .await
        .expect("open");
    assert_eq!(store.version(), Some(SCHEMA_VERSION));
    store
        .commit(&[
            put_op("a", "op a"),
            put_op("b", "op b"),
            Write::PutDoc {
                collection: "notes".into(),
                key: "1".into(),
                record: JsValue::from_str("doc 1"),
            },
            Write::PutMeta {
                key: "client_id".into(),
                value: JsValue::from_str("c-1"),
            },
        ])
        .await
        .expect("commit");
    store.close();

    // A reload is a new connection: only what was committed is there.
    let store = IdbStore::open(&name, Durability::Relaxed)
        .await
        .expect("reopen");
    assert_eq!(strings(store.load_ops().await.unwrap()), ["op a", "op b"]);
    assert_eq!(strings(store.load_docs().await.unwrap()), ["doc 1"]);
    assert_eq!(
        store
            .get_meta("client_id")
            .await
            .unwrap()
            .and_then(|v| v.as_string())
            .as_deref(),
        Some("c-1")
    );
    assert_eq!(store.get_meta("cursor").await.unwrap(), None);
}

#[wasm_bindgen_test]
async fn an_ack_deletes_the_op_and_writes_the_doc_in_one_transaction() {
    let store = IdbStore::open(&fresh_db_name("ack"), Durability::Strict)
        .await
        .expect("open");
    store
        .commit(&[put_op("a", "op a"), put_op("b", "op b")])
        .await
        .unwrap();
    let before = store.transactions_committed();
    store
        .commit(&[
            Write::DeleteOp { id: "a".into() },
            Write::PutDoc {
                collection: "notes".into(),
                key: "a".into(),
                record: JsValue::from_str("confirmed a"),
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.transactions_committed(), before + 1);
    assert_eq!(strings(store.load_ops().await.unwrap()), ["op b"]);
    assert_eq!(strings(store.load_docs().await.unwrap()), ["confirmed a"]);
}

#[wasm_bindgen_test]
async fn a_transaction_that_fails_midway_leaves_nothing_behind() {
    let store = IdbStore::open(&fresh_db_name("atomic"), Durability::Relaxed)
        .await
        .expect("open");
    store.commit(&[put_op("kept", "kept")]).await.unwrap();
    // A function cannot be stored (structured clone fails), so the third write fails after two succeeded.
    let uncloneable = JsValue::from(js_sys::Function::new_no_args(""));
    let error = store
        .commit(&[
            put_op("x", "x"),
            Write::DeleteOp { id: "kept".into() },
            Write::PutOp {
                id: "y".into(),
                record: uncloneable,
            },
        ])
        .await
        .expect_err("an uncloneable value must fail the commit");
    match &error {
        StoreError::Failed { name, .. } => assert_eq!(name, "DataCloneError"),
        other => panic!("expected a DataCloneError, got {other:?}"),
    }
    assert_eq!(error.code(), "STORAGE_FAILED");
    assert_eq!(strings(store.load_ops().await.unwrap()), ["kept"]);
}

#[wasm_bindgen_test]
async fn a_failed_commit_writes_nothing() {
    let store = IdbStore::open(&fresh_db_name("commit-fail"), Durability::Relaxed)
        .await
        .expect("open");
    let bad = Write::PutOp {
        id: "bad".into(),
        record: JsValue::from(js_sys::Function::new_no_args("")),
    };
    assert!(store.commit(&[put_op("good", "good"), bad]).await.is_err());
    assert!(store.load_ops().await.unwrap().is_empty());
    assert_eq!(store.transactions_committed(), 0);
}

#[wasm_bindgen_test]
async fn a_lost_connection_is_reopened_once_and_the_write_retried() {
    let store = IdbStore::open(&fresh_db_name("reconnect"), Durability::Relaxed)
        .await
        .expect("open");
    store.drop_connection_for_test();
    store
        .commit(&[put_op("a", "after reconnect")])
        .await
        .expect("commit after reopen");
    assert_eq!(store.reconnections(), 1);
    assert_eq!(
        strings(store.load_ops().await.unwrap()),
        ["after reconnect"]
    );

    // Closed by the app: no silent reopen.
    store.close();
    let error = store.commit(&[put_op("b", "b")]).await.expect_err("closed");
    assert_eq!(error.code(), "DB_CLOSED");
}

#[wasm_bindgen_test]
async fn a_schema_1_database_is_migrated_in_place() {
    let name = fresh_db_name("migrate");
    // The first schema: a `meta` store only.
    let v1 = Database::open(name.as_str())
        .with_version(1u32)
        .with_on_upgrade_needed(|_, db| {
            db.create_object_store("meta").build()?;
            Ok(())
        })
        .await
        .expect("create v1");
    let tx = v1
        .transaction("meta")
        .with_mode(TransactionMode::Readwrite)
        .build()
        .unwrap();
    tx.object_store("meta")
        .unwrap()
        .put("c-old")
        .with_key("client_id")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    v1.close();

    let store = IdbStore::open(&name, Durability::Relaxed)
        .await
        .expect("open migrates");
    assert_eq!(store.version(), Some(SCHEMA_VERSION));
    assert_eq!(
        store
            .get_meta("client_id")
            .await
            .unwrap()
            .and_then(|v| v.as_string())
            .as_deref(),
        Some("c-old"),
        "data written under the old schema survives the upgrade"
    );
    store
        .commit(&[put_op("a", "a")])
        .await
        .expect("the new stores exist");
}

#[wasm_bindgen_test]
async fn a_newer_schema_in_another_tab_is_not_blocked() {
    let name = fresh_db_name("versionchange");
    let store = IdbStore::open(&name, Durability::Relaxed)
        .await
        .expect("open");
    // Another tab running a newer release opens the database at a higher version. If this connection
    // stayed open, that open would be blocked until this tab closed.
    let newer = Database::open(name.as_str())
        .with_version(SCHEMA_VERSION + 1)
        .await
        .expect("the newer schema's open must not be blocked");
    assert!(store.is_upgrade_blocked());
    let error = store
        .commit(&[put_op("a", "a")])
        .await
        .expect_err("stepped aside");
    assert_eq!(error.code(), "DB_UPGRADE_BLOCKED");
    newer.close();
}

#[wasm_bindgen_test]
async fn a_restore_reads_meta_then_ops_in_parts_that_miss_no_key_then_docs_then_history() {
    let name = fresh_db_name("parts");
    let store = IdbStore::open(&name, Durability::Relaxed)
        .await
        .expect("open");
    // Keys at and around every bound of the parts, below the first and past the last, and op ids.
    let mut keys = vec![
        "",
        " ",
        "0",
        "0ff",
        "1",
        "1-",
        "9~",
        ":",
        "a",
        "a0",
        "e~~",
        "f",
        "f0",
        "g",
        "z",
        "~",
        "\u{e9}",
        "07a1c3e2-55b0-4c1e-9a2b-0c1d2e3f4a5b",
        "fedcba98-7654-4321-8fed-cba987654321",
    ];
    let writes: Vec<Write> = keys.iter().map(|k| put_op(k, &format!("op {k}"))).collect();
    store.commit(&writes).await.expect("commit");
    keys.sort();
    let expected: Vec<String> = keys.iter().map(|k| format!("op {k}")).collect();
    assert_eq!(strings(store.load_ops().await.unwrap()), expected);
    // What a restore's read hands over, in order: the meta records, each part of the op records (with
    // how many parts come after it), the documents, the history.
    let extra = [
        Write::PutMeta {
            key: "cursor".into(),
            value: "c1".into(),
        },
        Write::PutDoc {
            collection: "notes".into(),
            key: "a".into(),
            record: JsValue::from_str("doc a"),
        },
    ];
    store.commit(&extra).await.expect("commit");
    let history: Vec<Write> = (1..=2)
        .map(|id| Write::PutHistory {
            id,
            record: JsValue::from_str(&format!("entry {id}")),
        })
        .collect();
    store
        .commit_history(&history)
        .await
        .expect("commit history");
    let handed = RefCell::new(Vec::new());
    store
        .read_for_restore(|part| {
            let index = handed.borrow().len();
            handed.borrow_mut().push(match part {
                Part::Meta(entries) => ("meta", entries.len()),
                Part::Values { values, parts_left } => {
                    assert_eq!(parts_left, 16 - index, "parts left after part {index}");
                    ("ops", values.length() as usize)
                }
                Part::Docs(docs) => ("docs", docs.length() as usize),
                Part::History(entries) => ("history", entries.length() as usize),
            })
        })
        .await
        .unwrap();
    let handed = handed.into_inner();
    assert_eq!(handed.len(), 19, "{handed:?}");
    assert_eq!(handed[0], ("meta", 1));
    assert_eq!(handed[17..], [("docs", 1), ("history", 2)]);
    let sizes: Vec<usize> = handed[1..17]
        .iter()
        .map(|&(what, n)| {
            assert_eq!(what, "ops");
            n
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), keys.len());
    assert_eq!(
        sizes[15], 7,
        "f, f0, g, z, ~, é and the id from f: the last part"
    );
}
