//! IndexedDB access through `indexed_db_futures`.
//!
//! This is the seed of the runtime's `IdbStore`: it opens the database at an explicit schema version and
//! reads and writes the `meta` store (client id, pull cursor). The browser tests use it to prove the whole
//! chain — Rust, wasm-bindgen, headless Chromium, IndexedDB — works end to end.

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;

/// The schema version the code expects. Every change to the object stores bumps it and adds a step to
/// [`upgrade`], so a database written by an older release is migrated, never recreated.
pub const SCHEMA_VERSION: u32 = 1;

/// Small key/value records about the outbox itself: client id, pull cursor.
pub const META_STORE: &str = "meta";

/// Errors from IndexedDB, kept as the library's typed errors so the DOMException is not lost.
pub type IdbError = indexed_db_futures::error::Error;
/// Errors from opening (and upgrading) the database.
pub type OpenError = indexed_db_futures::error::OpenDbError;

/// One open connection to an outbox database.
pub struct IdbStore {
    db: Database,
}

impl IdbStore {
    /// Opens (creating or upgrading as needed) the database called `name`.
    pub async fn open(name: &str) -> Result<Self, OpenError> {
        let db = Database::open(name)
            .with_version(SCHEMA_VERSION)
            .with_on_upgrade_needed(|event, db| upgrade(event.old_version() as u32, &db))
            .await?;
        Ok(Self { db })
    }

    /// Writes one meta record in its own readwrite transaction, resolving after the commit.
    pub async fn put_meta(&self, key: &str, value: &str) -> Result<(), IdbError> {
        let tx = self
            .db
            .transaction(META_STORE)
            .with_mode(TransactionMode::Readwrite)
            .build()?;
        tx.object_store(META_STORE)?
            .put(value)
            .with_key(key)
            .await?;
        // indexed_db_futures rolls a transaction back unless it is committed explicitly.
        tx.commit().await?;
        Ok(())
    }

    /// Reads one meta record, `None` when it was never written.
    pub async fn get_meta(&self, key: &str) -> Result<Option<String>, IdbError> {
        let tx = self.db.transaction(META_STORE).build()?;
        let value: Option<String> = tx.object_store(META_STORE)?.get(key).await?;
        Ok(value)
    }

    /// The schema version of the open connection.
    pub fn version(&self) -> u32 {
        self.db.version() as u32
    }

    /// Closes the connection, so that another open of the same name (a reload) sees committed data only.
    pub fn close(self) {
        self.db.close();
    }
}

/// Applies every migration step from `old_version` up to [`SCHEMA_VERSION`].
fn upgrade(old_version: u32, db: &Database) -> Result<(), IdbError> {
    if old_version < 1 {
        db.create_object_store(META_STORE).build()?;
    }
    Ok(())
}
