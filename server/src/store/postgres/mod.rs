//! The PostgreSQL store: any number of server instances share one database, and every rule of
//! PROTOCOL §4 and §7 holds across them exactly as in one process.
//!
//! - **Claiming a key.** A write transaction starts with `pg_try_advisory_xact_lock` on a 64-bit
//!   hash of (scope, key) for each of its ops. The lock is visible to every instance, never
//!   waits (a held key answers `409 idempotency-key-in-use` at once), and is released by COMMIT,
//!   ROLLBACK, or PostgreSQL ending the session when an instance dies, so a crash leaves no stale
//!   claim. The idempotency record is then read *after* the lock is held: a duplicate that gets
//!   the lock once the first request committed sees its record and replays it. The primary key
//!   on (scope, key) backs this up: a second insert can only fail, never store a second record.
//! - **No lost update.** The document row is read `FOR UPDATE`, so the precondition is evaluated
//!   against the latest committed version even when another instance just wrote it, and the
//!   update itself is guarded by `WHERE version = <the version locked>`. Two creators of the same
//!   new document collide on the primary key; the loser's transaction is retried from the start
//!   (as are serialization failures and deadlocks), and then sees the winner's row.
//! - **Pull cursors.** A position taken from a sequence at insert time is not safe: a
//!   transaction that took position 5 may commit after one that took 6, and a reader that
//!   already moved its cursor to 6 would skip 5 forever. Here positions are handed out by a
//!   one-row counter (`change_seq`), updated as the *last* statement of each write transaction.
//!   Its row lock is held until COMMIT, and PostgreSQL makes a commit visible before it releases
//!   the transaction's locks, so the next writer gets its positions only after the previous one
//!   is visible: positions follow commit order across all instances, and a reader that sees
//!   position N has already been able to see every position below N. The cost is that commits
//!   are serialised from taking positions to the end of COMMIT, WAL flush included; everything
//!   before (claims, reads, row locks, the writes) runs in parallel.
//! - **Round trips.** A write transaction takes the same number of round trips whatever the
//!   number of ops (see `write.rs`): the ops are decided in memory, in order, against the rows
//!   read and locked up front (in (collection, key) order, so two batches never deadlock on each
//!   other's rows), and written back in bulk.

mod write;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::{DocRow, OpResult, Store, StoreOptions, WriteOp};
use crate::BoxError;

pub struct PostgresStore {
    pool: Pool,
    ttl: Duration,
}

/// A connection string for logs: no password.
pub fn describe(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// How often a transaction that lost a race (unique violation, deadlock, serialization failure,
/// a version that moved under a guarded update) is run again before the request fails with 500.
const MAX_ATTEMPTS: u32 = 8;

/// Why one attempt at a write transaction failed.
pub(super) enum Failure {
    /// Another transaction won a race; running the whole transaction again resolves it.
    Race(String),
    Fatal(BoxError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        let race = [
            SqlState::UNIQUE_VIOLATION,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ];
        // tokio-postgres displays a server error as just "db error": keep what the server said.
        let what = match e.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        match e.code() {
            Some(code) if race.contains(code) => Failure::Race(what),
            _ => Failure::Fatal(what.into()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Failure::Fatal(e.into())
    }
}

/// Milliseconds since the epoch by the database's clock, so every instance expires records by
/// the same clock.
const DB_NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

impl PostgresStore {
    /// Connects, and runs pending migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<PostgresStore, BoxError> {
        let config: tokio_postgres::Config = url.parse()?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pg_pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()?;
        let mut client = pool.get().await?;
        let applied = super::migrations::run_postgres(&mut client).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "postgres schema migrated");
        }
        drop(client);
        Ok(PostgresStore {
            pool,
            ttl: options.ttl,
        })
    }
}

pub(super) fn row_to_doc(r: &tokio_postgres::Row) -> DocRow {
    DocRow {
        collection: r.get(0),
        key: r.get(1),
        version: r.get::<_, i64>(2) as u64,
        deleted: r.get(3),
        body: r.get(4),
        // NULL only for a document this transaction created earlier in the same batch.
        seq: r.get::<_, Option<i64>>(5).unwrap_or(0),
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn apply(
        &self,
        scope: &str,
        ops: Vec<WriteOp>,
        hold: Duration,
    ) -> Result<Vec<OpResult>, BoxError> {
        let mut hold = hold;
        for attempt in 1.. {
            match self.try_apply(scope, &ops, hold).await {
                Ok(results) => return Ok(results),
                Err(Failure::Race(why)) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, %why, "write transaction lost a race; retrying");
                    // The injected latency was already spent on the first attempt.
                    hold = Duration::ZERO;
                    let backoff = fastrand::u64(0..=(2u64 << attempt.min(6)));
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(Failure::Race(why)) => {
                    return Err(format!("write transaction lost {attempt} races: {why}").into())
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    async fn get(&self, collection: &str, key: &str) -> Result<Option<DocRow>, BoxError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT collection, key, version, deleted, body, seq FROM docs
                 WHERE collection = $1 AND key = $2",
            )
            .await?;
        Ok(client
            .query_opt(&stmt, &[&collection, &key])
            .await?
            .map(|r| row_to_doc(&r)))
    }

    async fn changes_since(
        &self,
        since: i64,
        limit: usize,
        collections: Vec<String>,
    ) -> Result<Vec<DocRow>, BoxError> {
        let client = self.pool.get().await?;
        let fetch = (limit + 1) as i64;
        // One statement, one snapshot: what it returns is a prefix of commit order.
        let rows = if collections.is_empty() {
            let stmt = client
                .prepare_cached(
                    "SELECT collection, key, version, deleted, body, seq FROM docs
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .await?;
            client.query(&stmt, &[&since, &fetch]).await?
        } else {
            let stmt = client
                .prepare_cached(
                    "SELECT collection, key, version, deleted, body, seq FROM docs
                     WHERE seq > $1 AND collection = ANY($3) ORDER BY seq LIMIT $2",
                )
                .await?;
            client.query(&stmt, &[&since, &fetch, &collections]).await?
        };
        Ok(rows.iter().map(row_to_doc).collect())
    }

    async fn ledger(&self) -> Result<Vec<(String, String, i64)>, BoxError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT scope, key, applied FROM ledger ORDER BY scope, key",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn purge_expired(&self, limit: usize) -> Result<usize, BoxError> {
        // SKIP LOCKED: a batch never waits for a writer, and instances running the job at the
        // same time take disjoint rows. Writers of other keys never touch these rows.
        let client = self.pool.get().await?;
        let n = client
            .execute(
                &format!(
                    "DELETE FROM idempotency WHERE (scope, key) IN (
                       SELECT scope, key FROM idempotency WHERE expires_ms <= {DB_NOW_MS}
                       LIMIT $1 FOR UPDATE SKIP LOCKED)"
                ),
                &[&(limit as i64)],
            )
            .await?;
        Ok(n as usize)
    }

    async fn reset(&self) -> Result<(), BoxError> {
        // change_seq is kept: positions keep counting.
        let client = self.pool.get().await?;
        client
            .batch_execute("TRUNCATE docs, changes, idempotency, ledger")
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::write::lock_id;
    use super::*;

    #[test]
    fn lock_ids_depend_on_scope_and_key() {
        assert_eq!(lock_id("a", "k"), lock_id("a", "k"));
        assert_ne!(lock_id("a", "k"), lock_id("b", "k"));
        assert_ne!(lock_id("ab", "c"), lock_id("a", "bc"));
    }

    #[test]
    fn descriptions_never_show_the_password() {
        let c: tokio_postgres::Config = "postgres://u:secret@127.0.0.1:5433/db".parse().unwrap();
        assert_eq!(describe(&c), "postgres://u@127.0.0.1:5433/db");
    }
}
