//! SQLite storage: documents with versions, the change log behind pull, idempotency records and
//! the test ledger.
//!
//! Concurrency: there is one writer connection behind a `std::sync::Mutex`, used only from
//! `tokio::task::spawn_blocking`. SQLite allows one writer at a time anyway, and serialising the
//! writers in-process means change sequence numbers are handed out in commit order, which is what
//! makes a pull cursor safe (a reader can never see change N+1 committed while N is still
//! pending). Reads use a second connection; WAL mode lets them run while a write is in progress.
//! Blocking SQLite calls never run on the async worker threads.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::{json, Value};

use crate::headers::Preconditions;
use crate::problem::{Problem, ProblemType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One mutation, validated and ready to apply.
#[derive(Clone, Debug)]
pub struct WriteOp {
    pub method: Method,
    pub collection: String,
    pub key: String,
    /// The new document (PUT) or the merge patch (PATCH); `Null` for DELETE.
    pub body: Value,
    pub preconditions: Preconditions,
    pub idempotency_key: String,
    pub fingerprint: [u8; 32],
    /// Sent as `Location` when the write creates the document.
    pub location: String,
}

/// What a completed write answered. Stored with the idempotency key, atomically with the effect,
/// and replayed verbatim for a retry.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub version: u64,
    pub content_type: Option<String>,
    pub location: Option<String>,
    /// The document as JSON text (absent for DELETE's 204).
    pub body: Option<String>,
}

impl StoredResponse {
    pub fn etag(&self) -> String {
        etag(self.version)
    }
}

#[derive(Debug)]
pub enum OpResult {
    Applied(StoredResponse),
    Replayed(StoredResponse),
    Problem(Problem),
}

/// The stored state of one document, live or tombstone.
#[derive(Clone, Debug)]
pub struct DocRow {
    pub collection: String,
    pub key: String,
    pub version: u64,
    pub deleted: bool,
    pub body: Option<String>,
    pub seq: i64,
}

impl DocRow {
    pub fn doc_value(&self) -> Value {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null)
    }

    /// The shape used for `current` in conflict problems and for entries in pull.
    pub fn state_json(&self) -> Value {
        json!({
            "version": self.version,
            "etag": etag(self.version),
            "deleted": self.deleted,
            "doc": if self.deleted { Value::Null } else { self.doc_value() },
        })
    }
}

pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

pub struct Store {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    ttl: Duration,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    body       TEXT,
    seq        INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS docs_by_seq ON docs (seq);
CREATE TABLE IF NOT EXISTS changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    scope      TEXT NOT NULL,
    idem_key   TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  BLOB NOT NULL,
    status       INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    content_type TEXT,
    location     TEXT,
    body         TEXT,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_ms);
-- Counts effects per idempotency key independently of the idempotency table, so a bug that
-- applied a key twice shows up as 2 instead of being hidden by the primary key.
CREATE TABLE IF NOT EXISTS ledger (
    scope   TEXT NOT NULL,
    key     TEXT NOT NULL,
    applied INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
"#;

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

impl Store {
    pub fn open(path: &Path, sync: Synchronous, ttl: Duration) -> rusqlite::Result<Store> {
        let writer = open(path, sync)?;
        writer.execute_batch(SCHEMA)?;
        let reader = open(path, sync)?;
        Ok(Store {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            ttl,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind (rusqlite
        // rolls back on drop), so a poisoned lock is safe to reuse.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the ops in order, in ONE transaction: each op's effect, version bump, change-log
    /// entry, idempotency record and ledger count commit together or not at all.
    pub fn apply(&self, scope: &str, ops: &[WriteOp]) -> rusqlite::Result<Vec<OpResult>> {
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

    pub fn get(&self, collection: &str, key: &str) -> rusqlite::Result<Option<DocRow>> {
        let conn = self.reader();
        load_doc(&conn, collection, key)
    }

    /// Documents whose latest change is after `since`, oldest change first, at most `limit + 1`
    /// rows (the extra row tells the caller there is more).
    /// Up to `limit + 1` docs changed after `since`, in commit order; only those of `collections`
    /// unless it is empty. The filter keeps the cursor's meaning: the caller's cursor is the last
    /// returned seq, and every skipped doc belongs to a collection the caller did not ask for.
    pub fn changes_since(
        &self,
        since: i64,
        limit: usize,
        collections: &[String],
    ) -> rusqlite::Result<Vec<DocRow>> {
        let conn = self.reader();
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
    }

    pub fn ledger(&self) -> rusqlite::Result<Vec<(String, String, i64)>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT scope, key, applied FROM ledger ORDER BY scope, key")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    }

    pub fn purge_expired(&self) -> rusqlite::Result<usize> {
        self.writer().execute(
            "DELETE FROM idempotency WHERE expires_ms <= ?1",
            params![now_ms()],
        )
    }

    /// Test support: forget everything. The change sequence keeps counting (AUTOINCREMENT), so
    /// cursors handed out before the reset never point into the future.
    pub fn reset(&self) -> rusqlite::Result<()> {
        self.writer().execute_batch(
            "BEGIN; DELETE FROM docs; DELETE FROM changes; DELETE FROM idempotency;
             DELETE FROM ledger; COMMIT;",
        )
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
    let existing = tx
        .prepare_cached(
            "SELECT fingerprint, status, version, content_type, location, body, expires_ms
             FROM idempotency WHERE scope = ?1 AND key = ?2",
        )?
        .query_row(params![scope, op.idempotency_key], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                StoredResponse {
                    status: r.get::<_, i64>(1)? as u16,
                    version: r.get::<_, i64>(2)? as u64,
                    content_type: r.get(3)?,
                    location: r.get(4)?,
                    body: r.get(5)?,
                },
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()?;
    if let Some((fingerprint, stored, expires_ms)) = existing {
        if expires_ms > now {
            if fingerprint == op.fingerprint {
                return Ok(OpResult::Replayed(stored));
            }
            return Ok(OpResult::Problem(Problem::new(
                ProblemType::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request (method, path or body differ)",
            )));
        }
        tx.execute(
            "DELETE FROM idempotency WHERE scope = ?1 AND key = ?2",
            params![scope, op.idempotency_key],
        )?;
    }

    // 2. Preconditions against the current state.
    let current = load_doc(tx, &op.collection, &op.key)?;
    let live = current.as_ref().filter(|d| !d.deleted);
    let live_tag = live.map(|d| d.version.to_string());
    let conflict = |why: &str| {
        let current_json = current.as_ref().map_or(Value::Null, DocRow::state_json);
        let mut p = Problem::new(ProblemType::VersionConflict, why).with("current", current_json);
        if let Some(d) = live {
            if let Ok(v) = axum::http::HeaderValue::from_str(&etag(d.version)) {
                p = p.header(axum::http::header::ETAG, v);
            }
        }
        OpResult::Problem(p)
    };
    if let Some(cond) = &op.preconditions.if_match {
        if !cond.matches_strong(live_tag.as_deref()) {
            return Ok(conflict(match live {
                Some(_) => "If-Match does not match the current version",
                None => "If-Match was given but the document does not exist",
            }));
        }
    }
    if let Some(cond) = &op.preconditions.if_none_match {
        if cond.matches_weak(live_tag.as_deref()) {
            return Ok(conflict(
                "If-None-Match matched: the document already exists",
            ));
        }
    }

    // 3. The effect.
    let next_version = current.as_ref().map_or(1, |d| d.version + 1);
    let (status, body, deleted) = match op.method {
        Method::Put => (
            if live.is_some() { 200 } else { 201 },
            Some(op.body.to_string()),
            false,
        ),
        Method::Patch => {
            let Some(doc) = live else {
                return Ok(OpResult::Problem(missing(current.as_ref(), op)));
            };
            let mut merged = doc.doc_value();
            json_patch::merge(&mut merged, &op.body);
            (200, Some(merged.to_string()), false)
        }
        Method::Delete => {
            if live.is_none() {
                return Ok(OpResult::Problem(missing(current.as_ref(), op)));
            }
            (204, None, true)
        }
    };

    tx.prepare_cached(
        "INSERT INTO changes (collection, key, version, deleted, scope, idem_key, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        op.collection,
        op.key,
        next_version as i64,
        deleted,
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
        next_version as i64,
        deleted,
        body,
        seq,
        now
    ])?;

    let stored = StoredResponse {
        status,
        version: next_version,
        content_type: body.as_ref().map(|_| "application/json".to_owned()),
        location: (status == 201).then(|| op.location.clone()),
        body,
    };
    let expires = now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
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
        expires
    ])?;
    tx.prepare_cached(
        "INSERT INTO ledger (scope, key, applied) VALUES (?1, ?2, 1)
         ON CONFLICT (scope, key) DO UPDATE SET applied = applied + 1",
    )?
    .execute(params![scope, op.idempotency_key])?;
    Ok(OpResult::Applied(stored))
}

/// PATCH or DELETE of a document that is not live: 404 if it never existed, 410 with the
/// tombstone's version if it was deleted.
fn missing(current: Option<&DocRow>, op: &WriteOp) -> Problem {
    match current {
        Some(tomb) => Problem::new(
            ProblemType::Gone,
            format!("{}/{} was deleted", op.collection, op.key),
        )
        .with("current", tomb.state_json()),
        None => Problem::new(
            ProblemType::NotFound,
            format!("{}/{} does not exist", op.collection, op.key),
        )
        .with("current", Value::Null),
    }
}
