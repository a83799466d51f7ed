//! The IndexedDB schema: object store names, the schema version, and the migration steps between versions.
//!
//! A database written by any earlier release must open and be migrated in place: the ops in it are the
//! user's unsent changes. So a schema change only ever adds a step to [`upgrade`]; it never recreates the
//! database.

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;

/// The schema version this build writes.
///
/// - 1: `meta` only (the first release of the storage layer).
/// - 2: adds `ops` (the queue) and `docs` (confirmed server documents).
/// - 3: adds `history` (the sync history); every earlier store and record is kept as it is.
pub const SCHEMA_VERSION: u32 = 3;

/// Op records, keyed by op id (a UUID string). Values are the core's stored record format.
pub const OPS: &str = "ops";
/// Confirmed documents: the last server-acknowledged version of each entity, keyed by
/// `[collection, key]` so one collection can be read as a key range.
pub const DOCS: &str = "docs";
/// Small records about the outbox itself (client id, pull cursor), keyed by name.
pub const META: &str = "meta";

/// The sync history: one record per attempt, keyed by its id (a number, so key order is time order and
/// the oldest entries go with one range delete). Values are the core's `HistoryEntry` as JSON text.
pub const HISTORY: &str = "history";

/// The stores of the outbox's own state, which every group commit opens.
pub const ALL_STORES: [&str; 3] = [OPS, DOCS, META];
/// [`ALL_STORES`] and the history: a group commit that carries history entries.
pub const ALL_STORES_AND_HISTORY: [&str; 4] = [OPS, DOCS, META, HISTORY];

/// Applies every migration step after `old_version`, in order. Runs inside the `versionchange`
/// transaction, so a failure leaves the database at its old version.
pub(crate) fn upgrade(old_version: u32, db: &Database) -> indexed_db_futures::Result<()> {
    if old_version < 1 {
        db.create_object_store(META).build()?;
    }
    if old_version < 2 {
        db.create_object_store(OPS).build()?;
        db.create_object_store(DOCS).build()?;
    }
    if old_version < 3 {
        db.create_object_store(HISTORY).build()?;
    }
    Ok(())
}
