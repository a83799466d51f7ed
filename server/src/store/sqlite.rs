//! The SQLite store, the embedded default: one file, one server process.
//!
//! Concurrency: there is one writer connection behind a `std::sync::Mutex`, used only from
//! `tokio::task::spawn_blocking`. SQLite allows one writer at a time anyway, and serialising the
//! writers in-process means change sequence numbers are handed out in commit order, which is what
//! makes a pull cursor safe (a reader can never see change N+1 committed while N is still
//! pending). Reads use a second connection; WAL mode lets them run while a write is in progress.
//! Blocking SQLite calls never run on the async worker threads. Keys in flight are claimed in
//! memory ([`super::inflight`]): a SQLite file is never shared by two server processes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::decide::{self, KeyRecord};
use super::inflight::{InFlight, Reservation};
use super::{now_ms, DocRow, OpResult, Store, StoredResponse, WriteOp};
use crate::BoxError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

pub struct SqliteStore {
    inner: Arc<Inner>,
    inflight: Arc<InFlight>,
}

struct Inner {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    ttl: Duration,
}

fn open(path: &Path, sync: Synchronous) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or creates) the file and runs pending migrations. Blocking.
    pub fn open(path: &Path, sync: Synchronous, ttl: Duration) -> Result<SqliteStore, BoxError> {
        let mut writer = open(path, sync)?;
        let applied = super::migrations::run_sqlite(&mut writer)?;
        if !applied.is_empty() {
            tracing::info!(?applied, "sqlite schema migrated");
        }
        let reader = open(path, sync)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                ttl,
            }),
            inflight: Arc::new(InFlight::default()),
        })
    }

    /// Runs `f` with the inner store on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, BoxError> {
        let inner = self.inner.clone();
        Ok(tokio::task::spawn_blocking(move || f(&inner)).await??)
    }
}

impl Inner {
    fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind (rusqlite
        // rolls back on drop), so a poisoned lock is safe to reuse.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, scope: &str, ops: &[WriteOp]) -> rusqlite::Result<Vec<OpResult>> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let now = now_ms();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(apply_one(&tx, scope, op, now, self.ttl)?);
        }
        tx.commit()?;
        Ok(results)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn apply(
        &self,
        scope: &str,
        ops: Vec<WriteOp>,
        hold: Duration,
    ) -> Result<Vec<OpResult>, BoxError> {
        let mut reservation = Reservation::new(self.inflight.clone());
        let mut results: Vec<Option<OpResult>> = Vec::with_capacity(ops.len());
        let mut claimed = Vec::new();
        for op in ops {
            if reservation.acquire(scope, &op.idempotency_key) {
                results.push(None);
                claimed.push(op);
            } else {
                results.push(Some(decide::key_in_use()));
            }
        }
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        if !claimed.is_empty() {
            let scope = scope.to_owned();
            let applied = self
                .blocking(move |inner| {
                    // Held until the transaction has committed, even if the client goes away.
                    let _held = reservation;
                    inner.apply(&scope, &claimed)
                })
                .await?;
            let mut applied = applied.into_iter();
            for slot in results.iter_mut().filter(|r| r.is_none()) {
                *slot = applied.next();
            }
        }
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| "a result is missing".into()))
            .collect()
    }

    async fn get(&self, collection: &str, key: &str) -> Result<Option<DocRow>, BoxError> {
        let (c, k) = (collection.to_owned(), key.to_owned());
        self.blocking(move |inner| load_doc(&inner.reader(), &c, &k))
            .await
    }

    async fn changes_since(
        &self,
        since: i64,
        limit: usize,
        collections: Vec<String>,
    ) -> Result<Vec<DocRow>, BoxError> {
        self.blocking(move |inner| {
            let conn = inner.reader();
            let filter = if collections.is_empty() {
                String::new()
            } else {
                let marks = vec!["?"; collections.len()].join(", ");
                format!("AND collection IN ({marks})")
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT collection, key, version, deleted, body, seq FROM docs
                 WHERE seq > ? {filter} ORDER BY seq LIMIT ?",
            ))?;
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&since];
            values.extend(collections.iter().map(|c| c as &dyn rusqlite::ToSql));
            let fetch = (limit + 1) as i64;
            values.push(&fetch);
            let rows = stmt.query_map(values.as_slice(), row_to_doc)?;
            rows.collect()
        })
        .await
    }

    async fn ledger(&self) -> Result<Vec<(String, String, i64)>, BoxError> {
        self.blocking(|inner| {
            let conn = inner.reader();
            let mut stmt =
                conn.prepare_cached("SELECT scope, key, applied FROM ledger ORDER BY scope, key")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .await
    }

    async fn purge_expired(&self, limit: usize) -> Result<usize, BoxError> {
        // One bounded batch per call: the writer lock is held only for that long, and writers
        // queued behind it run between batches.
        self.blocking(move |inner| {
            inner.writer().execute(
                "DELETE FROM idempotency WHERE (scope, key) IN (
                   SELECT scope, key FROM idempotency WHERE expires_ms <= ?1 LIMIT ?2)",
                params![now_ms(), limit as i64],
            )
        })
        .await
    }

    async fn reset(&self) -> Result<(), BoxError> {
        // The change sequence keeps counting (AUTOINCREMENT).
        self.blocking(|inner| {
            inner.writer().execute_batch(
                "BEGIN; DELETE FROM docs; DELETE FROM changes; DELETE FROM idempotency;
                 DELETE FROM ledger; COMMIT;",
            )
        })
        .await
    }
}

fn row_to_doc(r: &rusqlite::Row<'_>) -> rusqlite::Result<DocRow> {
    Ok(DocRow {
        collection: r.get(0)?,
        key: r.get(1)?,
        version: r.get::<_, i64>(2)? as u64,
        deleted: r.get(3)?,
        body: r.get(4)?,
        seq: r.get(5)?,
    })
}

fn load_doc(conn: &Connection, collection: &str, key: &str) -> rusqlite::Result<Option<DocRow>> {
    conn.prepare_cached(
        "SELECT collection, key, version, deleted, body, seq FROM docs
         WHERE collection = ?1 AND key = ?2",
    )?
    .query_row(params![collection, key], row_to_doc)
    .optional()
}

fn apply_one(
    tx: &Transaction<'_>,
    scope: &str,
    op: &WriteOp,
    now: i64,
    ttl: Duration,
) -> rusqlite::Result<OpResult> {
    // 1. Idempotency comes before any precondition: a retry after a lost ack must get the
    //    original answer even though the document has since moved on.
    let record = tx
        .prepare_cached(
            "SELECT fingerprint, status, version, content_type, location, body, expires_ms
             FROM idempotency WHERE scope = ?1 AND key = ?2",
        )?
        .query_row(params![scope, op.idempotency_key], |r| {
            Ok(KeyRecord {
                fingerprint: r.get(0)?,
                stored: StoredResponse {
                    status: r.get::<_, i64>(1)? as u16,
                    version: r.get::<_, i64>(2)? as u64,
                    content_type: r.get(3)?,
                    location: r.get(4)?,
                    body: r.get(5)?,
                },
                expires_ms: r.get(6)?,
            })
        })
        .optional()?;
    if let Some(answer) = decide::answer_from_record(record.as_ref(), op, now) {
        return Ok(answer);
    }
    if record.is_some() {
        tx.execute(
            "DELETE FROM idempotency WHERE scope = ?1 AND key = ?2",
            params![scope, op.idempotency_key],
        )?;
    }

    // 2. Preconditions against the current state, and the effect.
    let current = load_doc(tx, &op.collection, &op.key)?;
    let effect = match decide::effect(current.as_ref(), op) {
        Ok(effect) => effect,
        Err(problem) => return Ok(OpResult::Problem(problem)),
    };

    tx.prepare_cached(
        "INSERT INTO changes (collection, key, version, deleted, scope, idem_key, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        op.collection,
        op.key,
        effect.version as i64,
        effect.deleted,
        scope,
        op.idempotency_key,
        now
    ])?;
    let seq = tx.last_insert_rowid();
    tx.prepare_cached(
        "INSERT INTO docs (collection, key, version, deleted, body, seq, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (collection, key) DO UPDATE SET
           version = excluded.version, deleted = excluded.deleted, body = excluded.body,
           seq = excluded.seq, updated_ms = excluded.updated_ms",
    )?
    .execute(params![
        op.collection,
        op.key,
        effect.version as i64,
        effect.deleted,
        effect.body,
        seq,
        now
    ])?;

    let stored = effect.response;
    tx.prepare_cached(
        "INSERT INTO idempotency
           (scope, key, fingerprint, status, version, content_type, location, body, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        scope,
        op.idempotency_key,
        &op.fingerprint[..],
        stored.status,
        stored.version as i64,
        stored.content_type,
        stored.location,
        stored.body,
        now,
        decide::expires_at(now, ttl)
    ])?;
    tx.prepare_cached(
        "INSERT INTO ledger (scope, key, applied) VALUES (?1, ?2, 1)
         ON CONFLICT (scope, key) DO UPDATE SET applied = applied + 1",
    )?
    .execute(params![scope, op.idempotency_key])?;
    Ok(OpResult::Applied(stored))
}
