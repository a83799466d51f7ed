//! `IdbStore`: the outbox's IndexedDB database.
//!
//! One database per outbox `name`, with four object stores (see [`schema`]). The store knows nothing of
//! ops or documents beyond their keys: the runtime hands it already-encoded values, which keeps this layer
//! independent of the core's record format.
//!
//! Every write goes through [`IdbStore::commit`], which applies a list of [`Write`]s in ONE readwrite
//! transaction and returns only after the transaction's `complete` event. The runtime commits the core's
//! write groups through it, one at a time and in order (`src/runtime/durable.rs`).

mod commit;
mod error;
mod parts;
pub mod schema;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use wasm_bindgen::prelude::*;

pub use error::StoreError;
pub use parts::Part;
pub use schema::SCHEMA_VERSION;

/// How hard a commit tries to reach the disk before it reports success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// The browser may report `complete` before the data even reaches the OS (Chromium does): the
    /// browser process finishes the write, so it survives a tab crash or reload, the common failures;
    /// a crash of the browser itself, of the OS or of the power right after the commit could lose the
    /// last writes. Much faster, and IndexedDB's own default in Chromium.
    #[default]
    Relaxed,
    /// `complete` fires only after the data is flushed to disk: survives power loss, costs an fsync per
    /// transaction.
    Strict,
}

/// One change inside a commit.
#[derive(Clone, Debug)]
pub enum Write {
    /// Insert or replace the op record with this id.
    PutOp {
        /// The op id.
        id: String,
        /// The encoded record.
        record: JsValue,
    },
    /// Delete the op record with this id (absent is fine).
    DeleteOp {
        /// The op id.
        id: String,
    },
    /// Insert or replace the confirmed document of an entity.
    PutDoc {
        /// The entity's collection.
        collection: String,
        /// The entity's key.
        key: String,
        /// The encoded document record.
        record: JsValue,
    },
    /// Insert or replace a meta record.
    PutMeta {
        /// The record's name.
        key: String,
        /// Its value.
        value: JsValue,
    },
    /// Delete a meta record (absent is fine).
    DeleteMeta {
        /// The record's name.
        key: String,
    },
    /// Insert or replace a history entry.
    PutHistory {
        /// The entry id.
        id: u64,
        /// The encoded entry.
        record: JsValue,
    },
    /// Delete every history entry whose id is below this one (the bounds dropped them).
    DeleteHistoryBelow {
        /// The first id kept.
        id: u64,
    },
}

impl Write {
    fn is_history(&self) -> bool {
        matches!(
            self,
            Write::PutHistory { .. } | Write::DeleteHistoryBelow { .. }
        )
    }
}

/// The records of an object store with their keys, in key order.
type Entries = Result<Vec<(JsValue, JsValue)>, StoreError>;

/// An open outbox database. Survives a lost connection by reopening once per failed operation.
pub struct IdbStore {
    name: String,
    durability: Durability,
    connection: RefCell<Option<Connection>>,
    upgrade_blocked: Rc<UpgradeBlocked>,
    closed_by_app: Cell<bool>,
    committed: Cell<u64>,
    reopened: Cell<u32>,
    /// Commits still to fail, for tests (`fail_commits_for_test`).
    failing: Cell<u32>,
}

/// Set when another tab asked for a newer schema and this connection stepped aside, with an optional
/// callback so the runtime can report it at once rather than at its next write.
#[derive(Default)]
struct UpgradeBlocked {
    happened: Cell<bool>,
    listener: RefCell<Option<Box<dyn Fn()>>>,
}

/// A live connection and the `versionchange` listener that must live exactly as long as it.
struct Connection {
    db: Database,
    _on_version_change: Closure<dyn FnMut()>,
}

impl IdbStore {
    /// Opens (creating or migrating as needed) the database called `name`.
    pub async fn open(name: &str, durability: Durability) -> Result<Self, StoreError> {
        let upgrade_blocked = Rc::new(UpgradeBlocked::default());
        let connection = connect(name, &upgrade_blocked).await?;
        Ok(Self {
            name: name.to_owned(),
            durability,
            connection: RefCell::new(Some(connection)),
            upgrade_blocked,
            closed_by_app: Cell::new(false),
            committed: Cell::new(0),
            reopened: Cell::new(0),
            failing: Cell::new(0),
        })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Applies `writes` in order, in one readwrite transaction: all of them or none. Resolves after the
    /// transaction's `complete` event.
    pub async fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        if self.failing.get() > 0 {
            self.failing.set(self.failing.get() - 1);
            return Err(StoreError::Failed {
                name: "UnknownError".to_owned(),
                message: "a commit failed on purpose (test hook)".to_owned(),
                cause: JsValue::UNDEFINED,
            });
        }
        self.with_reconnect(async |db: Database| {
            commit::commit_once(&db, self.durability, writes).await
        })
        .await?;
        self.committed.set(self.committed.get() + 1);
        Ok(())
    }

    /// Commits history writes alone, in a transaction on the history store only, so it never waits
    /// for or holds up a group commit that does not carry history. Not counted by
    /// [`IdbStore::transactions_committed`] and not failed by [`IdbStore::fail_commits_for_test`]: those
    /// are about the outbox's own state.
    pub async fn commit_history(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.with_reconnect(async |db: Database| {
            commit::commit_once(&db, self.durability, writes).await
        })
        .await
    }

    /// Every stored op record, in key order.
    pub async fn load_ops(&self) -> Result<Vec<JsValue>, StoreError> {
        let values = RefCell::new(Vec::new());
        self.read_for_restore(|part| match part {
            Part::Values { values: part, .. } => values.borrow_mut().extend(part.iter()),
            Part::Meta(_) | Part::Docs(_) | Part::History(_) => {}
        })
        .await?;
        Ok(values.into_inner())
    }

    /// What a restore reads, in one transaction, handed to `take` a part at a time ([`Part`]): the meta
    /// records, the op records in key order (the caller orders them by their own
    /// sequence numbers; a part is parsed while the next is read), the confirmed documents and the
    /// sync history.
    pub async fn read_for_restore(&self, take: impl Fn(Part)) -> Result<(), StoreError> {
        self.with_reconnect(async |db: Database| parts::load_in_parts(db.as_sys(), &take).await)
            .await
    }

    /// Every stored op record with its key (the op id), in key order: a record that cannot be read
    /// still has a key to name and delete it by.
    pub fn load_op_entries(&self) -> impl Future<Output = Entries> + '_ {
        self.load_entries(schema::OPS)
    }

    async fn load_entries(&self, name: &'static str) -> Entries {
        self.with_reconnect(async |db: Database| {
            let tx = db.transaction(name).build()?;
            let store = tx.object_store(name)?;
            let keys: Vec<JsValue> = store
                .get_all_keys::<JsValue>()
                .await?
                .collect::<Result<_, _>>()
                .map_err(StoreError::from)?;
            let values: Vec<JsValue> = store
                .get_all::<JsValue>()
                .await?
                .collect::<Result<_, _>>()
                .map_err(StoreError::from)?;
            Ok(keys.into_iter().zip(values).collect())
        })
        .await
    }

    /// The ids of every stored op record.
    pub async fn load_op_keys(&self) -> Result<Vec<String>, StoreError> {
        self.with_reconnect(async |db: Database| {
            let tx = db.transaction(schema::OPS).build()?;
            let keys: Vec<JsValue> = tx
                .object_store(schema::OPS)?
                .get_all_keys::<JsValue>()
                .await?
                .collect::<Result<_, _>>()
                .map_err(StoreError::from)?;
            Ok(keys.iter().filter_map(JsValue::as_string).collect())
        })
        .await
    }

    /// The stored op records of these ids, with their keys; ids not stored (any more) are left out.
    pub async fn load_op_entries_by_id(
        &self,
        ids: &[String],
    ) -> Result<Vec<(JsValue, JsValue)>, StoreError> {
        self.with_reconnect(async |db: Database| {
            let tx = db.transaction(schema::OPS).build()?;
            let store = tx.object_store(schema::OPS)?;
            let mut entries = Vec::with_capacity(ids.len());
            for id in ids {
                let value: Option<JsValue> = store.get(id.as_str()).await?;
                if let Some(value) = value.filter(|v| !v.is_undefined()) {
                    entries.push((JsValue::from_str(id), value));
                }
            }
            Ok(entries)
        })
        .await
    }

    /// Every confirmed document record.
    pub async fn load_docs(&self) -> Result<Vec<JsValue>, StoreError> {
        self.with_reconnect(async |db: Database| load_all(&db, schema::DOCS).await)
            .await
    }

    /// One meta record, `None` when it was never written.
    pub async fn get_meta(&self, key: &str) -> Result<Option<JsValue>, StoreError> {
        self.with_reconnect(async |db: Database| {
            let tx = db.transaction(schema::META).build()?;
            let value: Option<JsValue> = tx.object_store(schema::META)?.get(key).await?;
            Ok(value.filter(|v| !v.is_undefined()))
        })
        .await
    }

    /// Closes the connection. Later calls fail with [`StoreError::Closed`].
    pub fn close(&self) {
        self.closed_by_app.set(true);
        if let Some(connection) = self.connection.borrow_mut().take() {
            connection.db.close();
        }
    }

    /// True once another tab asked for a newer schema and this connection stepped aside.
    pub fn is_upgrade_blocked(&self) -> bool {
        self.upgrade_blocked.happened.get()
    }

    /// Calls `listener` when another tab asks for a newer schema (after this connection has closed).
    pub fn on_upgrade_blocked(&self, listener: impl Fn() + 'static) {
        *self.upgrade_blocked.listener.borrow_mut() = Some(Box::new(listener));
    }

    /// The schema version of the open connection.
    pub fn version(&self) -> Option<u32> {
        self.connection
            .borrow()
            .as_ref()
            .map(|c| c.db.version() as u32)
    }

    /// How many readwrite transactions this store has committed. A test hook: group commit is proven by
    /// counting them.
    pub fn transactions_committed(&self) -> u64 {
        self.committed.get()
    }

    /// How many times a lost connection was reopened. A test hook.
    pub fn reconnections(&self) -> u32 {
        self.reopened.get()
    }

    /// Makes the next `n` commits fail, as a disk error would (nothing written). A test hook for the
    /// runtime's handling of failed commits.
    #[doc(hidden)]
    pub fn fail_commits_for_test(&self, n: u32) {
        self.failing.set(n);
    }

    /// Closes the underlying connection without telling the store, as the browser does when it loses the
    /// backing store. A test hook for the reopen path.
    #[doc(hidden)]
    pub fn drop_connection_for_test(&self) {
        if let Some(connection) = self.connection.borrow().as_ref() {
            connection.db.as_sys().close();
        }
    }

    /// Runs `op` on the current connection. If the connection turns out to be gone, reopens it once and
    /// runs `op` again: a transaction on a dead connection committed nothing, so running it again is safe.
    async fn with_reconnect<T>(
        &self,
        op: impl AsyncFn(Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match op(self.current()?).await {
            Err(e) if e.is_connection_lost() => {
                self.reconnect().await?;
                op(self.current()?).await
            }
            result => result,
        }
    }

    fn current(&self) -> Result<Database, StoreError> {
        if self.upgrade_blocked.happened.get() {
            return Err(StoreError::UpgradeBlocked);
        }
        self.connection
            .borrow()
            .as_ref()
            .map(|c| c.db.clone())
            .ok_or(StoreError::Closed { cause: None })
    }

    async fn reconnect(&self) -> Result<(), StoreError> {
        if self.closed_by_app.get() {
            return Err(StoreError::Closed { cause: None });
        }
        let connection = connect(&self.name, &self.upgrade_blocked).await?;
        self.reopened.set(self.reopened.get() + 1);
        if let Some(old) = self.connection.replace(Some(connection)) {
            old.db.close();
        }
        Ok(())
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.get_mut().take() {
            connection.db.close();
        }
    }
}

async fn connect(
    name: &str,
    upgrade_blocked: &Rc<UpgradeBlocked>,
) -> Result<Connection, StoreError> {
    let db = Database::open(name)
        .with_version(SCHEMA_VERSION)
        .with_on_upgrade_needed(|event, db| schema::upgrade(event.old_version() as u32, &db))
        .await?;
    // Another tab that loaded a newer release wants to upgrade the schema. Holding the connection open
    // would block it forever, so this tab closes its connection and reports DB_UPGRADE_BLOCKED instead;
    // the app tells the user to reload.
    let flag = Rc::clone(upgrade_blocked);
    let raw_db = db.as_sys().clone();
    let on_version_change = Closure::<dyn FnMut()>::new(move || {
        flag.happened.set(true);
        raw_db.close();
        if let Some(listener) = &*flag.listener.borrow() {
            listener();
        }
    });
    db.as_sys()
        .set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
    Ok(Connection {
        db,
        _on_version_change: on_version_change,
    })
}

async fn load_all(db: &Database, store: &str) -> Result<Vec<JsValue>, StoreError> {
    let tx = db.transaction(store).build()?;
    let records = tx.object_store(store)?.get_all::<JsValue>().await?;
    records.map(|r| r.map_err(StoreError::from)).collect()
}
