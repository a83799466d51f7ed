//! Storage: documents with versions, the change log behind pull, idempotency records and the test
//! ledger, behind one trait with two implementations:
//!
//! - [`sqlite::SqliteStore`], the embedded default: one file, one process;
//! - [`postgres::PostgresStore`], for several server instances sharing one database.
//!
//! What a write *means* (replay, 422, preconditions, the new version) is decided once, in
//! [`decide`]; the implementations only differ in how they claim keys, lock, and hand out
//! change positions in commit order.

pub mod decide;
mod inflight;
pub mod migrations;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::headers::Preconditions;
use crate::problem::Problem;
use crate::BoxError;

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

/// The storage contract. Every implementation must give the guarantees of PROTOCOL §4 and §7 on
/// its own, whatever number of server processes share it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Claims each op's idempotency key; an op whose key another request holds gets
    /// `409 idempotency-key-in-use`. Keeps the claims for `hold` (injected latency, so tests can
    /// make requests overlap), then applies the claimed ops in order in ONE transaction: each op's
    /// effect, version bump, change-log entry, idempotency record and ledger count commit together
    /// or not at all. Returns one result per op, in op order.
    async fn apply(
        &self,
        scope: &str,
        ops: Vec<WriteOp>,
        hold: Duration,
    ) -> Result<Vec<OpResult>, BoxError>;

    async fn get(&self, collection: &str, key: &str) -> Result<Option<DocRow>, BoxError>;

    /// Up to `limit + 1` docs changed after `since`, in commit order (the extra row tells the
    /// caller there is more); only those of `collections` unless it is empty. The filter keeps
    /// the cursor's meaning: the caller's cursor is the last returned seq, and every skipped doc
    /// belongs to a collection the caller did not ask for.
    async fn changes_since(
        &self,
        since: i64,
        limit: usize,
        collections: Vec<String>,
    ) -> Result<Vec<DocRow>, BoxError>;

    /// `(scope, key, applied)` for every key ever applied.
    async fn ledger(&self) -> Result<Vec<(String, String, i64)>, BoxError>;

    /// Deletes at most `limit` expired idempotency records; returns how many. Called in a loop by
    /// the cleanup job, so one call must stay short and must not hold up writes for long.
    async fn purge_expired(&self, limit: usize) -> Result<usize, BoxError>;

    /// Test support: forget everything. Change positions keep counting, so cursors handed out
    /// before the reset never point into the future.
    async fn reset(&self) -> Result<(), BoxError>;
}

/// Where the data lives: `--db PATH` (SQLite) or `--db postgres://…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbTarget {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl DbTarget {
    pub fn parse(s: &str) -> Result<DbTarget, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            s.parse::<tokio_postgres::Config>()
                .map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
            Ok(DbTarget::Postgres(s.to_owned()))
        } else if s.contains("://") {
            Err("--db takes a SQLite file path or a postgres:// URL".to_owned())
        } else {
            Ok(DbTarget::Sqlite(s.into()))
        }
    }

    /// For logs: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            DbTarget::Sqlite(path) => path.display().to_string(),
            DbTarget::Postgres(url) => match url.parse::<tokio_postgres::Config>() {
                Ok(c) => postgres::describe(&c),
                Err(_) => "postgres://(invalid)".to_owned(),
            },
        }
    }
}

/// Storage settings that come from the command line.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub ttl: Duration,
    pub synchronous: sqlite::Synchronous,
    pub pg_pool_size: usize,
}

/// Opens the store and runs its pending schema migrations.
pub async fn open(target: &DbTarget, options: &StoreOptions) -> Result<Arc<dyn Store>, BoxError> {
    Ok(match target {
        DbTarget::Sqlite(path) => {
            let path = path.clone();
            let options = options.clone();
            let store = tokio::task::spawn_blocking(move || {
                sqlite::SqliteStore::open(&path, options.synchronous, options.ttl)
            })
            .await??;
            Arc::new(store)
        }
        DbTarget::Postgres(url) => Arc::new(postgres::PostgresStore::open(url, options).await?),
    })
}
