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
//!   update itself is guarded by `WHERE version = <the version read>`. Two creators of the same
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
//!   are serialised for the few statements between taking positions and COMMIT (everything else
//!   in the transaction, including the document row locks, runs in parallel).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use sha2::{Digest, Sha256};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use super::decide::{self, KeyRecord};
use super::{DocRow, OpResult, Store, StoreOptions, StoredResponse, WriteOp};
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
enum Failure {
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
        match e.code() {
            Some(code) if race.contains(code) => Failure::Race(e.to_string()),
            _ => Failure::Fatal(e.into()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Failure::Fatal(e.into())
    }
}

/// A change made by the transaction, waiting for its position.
struct Change {
    collection: String,
    key: String,
    version: i64,
    deleted: bool,
    idem_key: String,
}

/// The advisory-lock id of an idempotency key: the first 8 bytes of SHA-256(scope NUL key). A
/// collision between two live keys only makes one of them wait for a 409 retry; the record
/// lookup and the primary key still tell them apart.
fn lock_id(scope: &str, key: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(scope);
    h.update([0]);
    h.update(key);
    let digest = h.finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
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

    async fn try_apply(
        &self,
        scope: &str,
        ops: &[WriteOp],
        hold: Duration,
    ) -> Result<Vec<OpResult>, Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let ids: Vec<i64> = ops
            .iter()
            .map(|op| lock_id(scope, &op.idempotency_key))
            .collect();
        // One round trip claims every key of the batch. A key repeated in the batch is claimed
        // twice by the same transaction, which advisory locks allow.
        let claim = tx
            .prepare_cached(&format!(
                "SELECT ARRAY(SELECT pg_try_advisory_xact_lock(u.id)
                              FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, i) ORDER BY u.i),
                        {DB_NOW_MS}"
            ))
            .await?;
        let row = tx.query_one(&claim, &[&ids]).await?;
        let claimed: Vec<bool> = row.get(0);
        let now: i64 = row.get(1);
        if !claimed.contains(&true) {
            // Nothing to do: give the connection back before waiting out the latency.
            drop(tx);
            drop(client);
            sleep(hold).await;
            return Ok(claimed.iter().map(|_| decide::key_in_use()).collect());
        }
        sleep(hold).await;
        let mut results = Vec::with_capacity(ops.len());
        let mut changes = Vec::new();
        for (op, claimed) in ops.iter().zip(claimed) {
            results.push(if claimed {
                self.apply_one(&tx, scope, op, now, &mut changes).await?
            } else {
                decide::key_in_use()
            });
        }
        if !changes.is_empty() {
            assign_positions(&tx, scope, now, &changes).await?;
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn apply_one(
        &self,
        tx: &Transaction<'_>,
        scope: &str,
        op: &WriteOp,
        now: i64,
        changes: &mut Vec<Change>,
    ) -> Result<OpResult, Failure> {
        // 1. Idempotency before preconditions (PROTOCOL §4), read while holding the key's lock;
        //    the document row is read and locked in the same round trip (tokio-postgres
        //    pipelines the two), also when the record then answers: one round trip saved per op
        //    is worth a row lock held a little longer by a replay.
        let select_record = tx
            .prepare_cached(
                "SELECT fingerprint, status, version, content_type, location, body, expires_ms
                 FROM idempotency WHERE scope = $1 AND key = $2",
            )
            .await?;
        let select_doc = tx
            .prepare_cached(
                "SELECT collection, key, version, deleted, body, seq FROM docs
                 WHERE collection = $1 AND key = $2 FOR UPDATE",
            )
            .await?;
        let record_key: [&(dyn ToSql + Sync); 2] = [&scope, &op.idempotency_key];
        let doc_key: [&(dyn ToSql + Sync); 2] = [&op.collection, &op.key];
        let (record, current) = tokio::try_join!(
            tx.query_opt(&select_record, &record_key),
            tx.query_opt(&select_doc, &doc_key),
        )?;
        let record = record.map(|r| KeyRecord {
            fingerprint: r.get(0),
            stored: StoredResponse {
                status: r.get::<_, i32>(1) as u16,
                version: r.get::<_, i64>(2) as u64,
                content_type: r.get(3),
                location: r.get(4),
                body: r.get(5),
            },
            expires_ms: r.get(6),
        });
        if let Some(answer) = decide::answer_from_record(record.as_ref(), op, now) {
            return Ok(answer);
        }
        if record.is_some() {
            tx.execute(
                "DELETE FROM idempotency WHERE scope = $1 AND key = $2",
                &[&scope, &op.idempotency_key],
            )
            .await?;
        }

        // 2. Preconditions against the latest committed row, locked until COMMIT.
        let current = current.map(|r| row_to_doc(&r));
        let effect = match decide::effect(current.as_ref(), op) {
            Ok(effect) => effect,
            Err(problem) => return Ok(OpResult::Problem(problem)),
        };

        // 3. The document, the record and the ledger count, in one round trip. The document
        //    write is guarded by the version read (NULL: the row must not exist yet), so it
        //    changes one row or none; none means another transaction won a race (a concurrent
        //    creator), and the whole transaction runs again.
        let version = effect.version as i64;
        let read: Option<i64> = current.as_ref().map(|d| d.version as i64);
        let write_doc = tx
            .prepare_cached(
                "INSERT INTO docs (collection, key, version, deleted, body, seq, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, NULL, $6)
                 ON CONFLICT (collection, key) DO UPDATE SET
                   version = excluded.version, deleted = excluded.deleted, body = excluded.body,
                   updated_ms = excluded.updated_ms
                 WHERE docs.version = $7",
            )
            .await?;
        let write_record = tx
            .prepare_cached(
                "WITH rec AS (
                   INSERT INTO idempotency (scope, key, fingerprint, status, version, content_type,
                                            location, body, created_ms, expires_ms)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10))
                 INSERT INTO ledger (scope, key, applied) VALUES ($1, $2, 1)
                 ON CONFLICT (scope, key) DO UPDATE SET applied = ledger.applied + 1",
            )
            .await?;
        let stored = effect.response;
        let status = stored.status as i32;
        let expires = decide::expires_at(now, self.ttl);
        let doc_params: [&(dyn ToSql + Sync); 7] = [
            &op.collection,
            &op.key,
            &version,
            &effect.deleted,
            &effect.body,
            &now,
            &read,
        ];
        let fingerprint = &op.fingerprint[..];
        let record_params: [&(dyn ToSql + Sync); 10] = [
            &scope,
            &op.idempotency_key,
            &fingerprint,
            &status,
            &version,
            &stored.content_type,
            &stored.location,
            &stored.body,
            &now,
            &expires,
        ];
        let (written, _) = tokio::try_join!(
            tx.execute(&write_doc, &doc_params),
            tx.execute(&write_record, &record_params),
        )?;
        if written != 1 {
            return Err(Failure::Race(format!(
                "{}/{} changed under a guarded write",
                op.collection, op.key
            )));
        }
        changes.push(Change {
            collection: op.collection.clone(),
            key: op.key.clone(),
            version,
            deleted: effect.deleted,
            idem_key: op.idempotency_key.clone(),
        });
        Ok(OpResult::Applied(stored))
    }
}

/// The transaction's last step: take positions from the counter (its row lock is then held to
/// COMMIT, which is what orders positions by commit; see the module docs), log the changes, and
/// stamp each document with the position of its latest change.
async fn assign_positions(
    tx: &Transaction<'_>,
    scope: &str,
    now: i64,
    changes: &[Change],
) -> Result<(), Failure> {
    let n = changes.len() as i64;
    let take = tx
        .prepare_cached("UPDATE change_seq SET last = last + $1 RETURNING last")
        .await?;
    let last: i64 = tx.query_one(&take, &[&n]).await?.get(0);
    let seqs: Vec<i64> = (last - n + 1..=last).collect();
    let mut latest: HashMap<(&str, &str), i64> = HashMap::new();
    for (c, &seq) in changes.iter().zip(&seqs) {
        latest.insert((&c.collection, &c.key), seq);
    }
    let log = tx
        .prepare_cached(
            "INSERT INTO changes (seq, collection, key, version, deleted, scope, idem_key, at_ms)
             SELECT u.seq, u.c, u.k, u.v, u.d, $7, u.i, $8
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::boolean[],
                         $6::text[]) AS u(seq, c, k, v, d, i)",
        )
        .await?;
    let stamp = tx
        .prepare_cached(
            "UPDATE docs AS d SET seq = u.seq
             FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(seq, c, k)
             WHERE d.collection = u.c AND d.key = u.k",
        )
        .await?;
    let collections: Vec<&str> = changes.iter().map(|c| c.collection.as_str()).collect();
    let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    let versions: Vec<i64> = changes.iter().map(|c| c.version).collect();
    let deleted: Vec<bool> = changes.iter().map(|c| c.deleted).collect();
    let idem_keys: Vec<&str> = changes.iter().map(|c| c.idem_key.as_str()).collect();
    let (doc_seqs, doc_collections, doc_keys) = latest.iter().fold(
        (Vec::new(), Vec::new(), Vec::new()),
        |(mut s, mut c, mut k), (&(coll, key), &seq)| {
            s.push(seq);
            c.push(coll);
            k.push(key);
            (s, c, k)
        },
    );
    // Both statements are sent at once (tokio-postgres pipelines them), to keep the counter's
    // lock short.
    let log_params: [&(dyn ToSql + Sync); 8] = [
        &seqs,
        &collections,
        &keys,
        &versions,
        &deleted,
        &idem_keys,
        &scope,
        &now,
    ];
    let stamp_params: [&(dyn ToSql + Sync); 3] = [&doc_seqs, &doc_collections, &doc_keys];
    tokio::try_join!(
        tx.execute(&log, &log_params),
        tx.execute(&stamp, &stamp_params)
    )?;
    Ok(())
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn row_to_doc(r: &tokio_postgres::Row) -> DocRow {
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
