//! One write transaction on PostgreSQL: claim, read and lock, decide, write in bulk, take
//! positions, commit. The guarantees this gives across instances are described in the parent
//! module.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::Transaction;
use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{row_to_doc, Failure, PostgresStore, DB_NOW_MS};
use crate::store::decide::{self, KeyRecord};
use crate::store::{DocRow, OpResult, StoredResponse, WriteOp};

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
pub(super) fn lock_id(scope: &str, key: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(scope);
    h.update([0]);
    h.update(key);
    let digest = h.finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl PostgresStore {
    /// One attempt at the whole write, in a fixed number of round trips whatever the number of
    /// ops: claim the keys; read their records and lock their documents; decide every op in
    /// memory, in order (a later op sees the state an earlier one left); write documents,
    /// records and ledger counts in bulk; take positions; commit.
    pub(super) async fn try_apply(
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
        // A key repeated in the batch is claimed twice by the same transaction, which advisory
        // locks allow.
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

        // 1. The records of the claimed keys, read only now that their locks are held, and the
        //    documents, locked until COMMIT in (collection, key) order, so two batches never
        //    deadlock on each other's rows. One pipelined round trip.
        let mine: Vec<&WriteOp> = ops
            .iter()
            .zip(&claimed)
            .filter(|(_, c)| **c)
            .map(|(op, _)| op)
            .collect();
        let keys: Vec<&str> = mine.iter().map(|op| op.idempotency_key.as_str()).collect();
        let doc_colls: Vec<&str> = mine.iter().map(|op| op.collection.as_str()).collect();
        let doc_keys: Vec<&str> = mine.iter().map(|op| op.key.as_str()).collect();
        let select_records = tx
            .prepare_cached(
                "SELECT key, fingerprint, status, version, content_type, location, body, expires_ms
                 FROM idempotency WHERE scope = $1 AND key = ANY($2)",
            )
            .await?;
        let lock_docs = tx
            .prepare_cached(
                "SELECT collection, key, version, deleted, body, seq FROM docs
                 WHERE (collection, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 ORDER BY collection, key FOR UPDATE",
            )
            .await?;
        let record_params: [&(dyn ToSql + Sync); 2] = [&scope, &keys];
        let doc_params: [&(dyn ToSql + Sync); 2] = [&doc_colls, &doc_keys];
        let (record_rows, doc_rows) = tokio::join!(
            tx.query(&select_records, &record_params),
            tx.query(&lock_docs, &doc_params),
        );
        let [record_rows, doc_rows] = settle([record_rows, doc_rows])?;
        let mut records: HashMap<String, KeyRecord> = record_rows
            .iter()
            .map(|r| {
                let record = KeyRecord {
                    fingerprint: r.get(1),
                    stored: StoredResponse {
                        status: r.get::<_, i32>(2) as u16,
                        version: r.get::<_, i64>(3) as u64,
                        content_type: r.get(4),
                        location: r.get(5),
                        body: r.get(6),
                    },
                    expires_ms: r.get(7),
                };
                (r.get(0), record)
            })
            .collect();
        let mut docs: HashMap<(String, String), DocRow> = doc_rows
            .iter()
            .map(|r| {
                let d = row_to_doc(r);
                ((d.collection.clone(), d.key.clone()), d)
            })
            .collect();
        // The versions as locked: the bulk update is guarded by them.
        let read: HashMap<(String, String), i64> = docs
            .iter()
            .map(|(id, d)| (id.clone(), d.version as i64))
            .collect();

        // 2. Every op in order, in memory: the same decisions as the SQLite store.
        let expires = decide::expires_at(now, self.ttl);
        let mut results = Vec::with_capacity(ops.len());
        let mut expired = Vec::new();
        let mut applied: Vec<(&WriteOp, StoredResponse)> = Vec::new();
        let mut changes = Vec::new();
        for (op, claimed) in ops.iter().zip(&claimed) {
            if !claimed {
                results.push(decide::key_in_use());
                continue;
            }
            let record = records.get(&op.idempotency_key);
            if let Some(answer) = decide::answer_from_record(record, op, now) {
                results.push(answer);
                continue;
            }
            if records.remove(&op.idempotency_key).is_some() {
                expired.push(op.idempotency_key.as_str());
            }
            let id = (op.collection.clone(), op.key.clone());
            let effect = match decide::effect(docs.get(&id), op) {
                Ok(effect) => effect,
                Err(problem) => {
                    results.push(OpResult::Problem(problem));
                    continue;
                }
            };
            docs.insert(
                id,
                DocRow {
                    collection: op.collection.clone(),
                    key: op.key.clone(),
                    version: effect.version,
                    deleted: effect.deleted,
                    body: effect.body.clone(),
                    seq: 0,
                },
            );
            records.insert(
                op.idempotency_key.clone(),
                KeyRecord {
                    fingerprint: op.fingerprint.to_vec(),
                    stored: effect.response.clone(),
                    expires_ms: expires,
                },
            );
            changes.push(Change {
                collection: op.collection.clone(),
                key: op.key.clone(),
                version: effect.version as i64,
                deleted: effect.deleted,
                idem_key: op.idempotency_key.clone(),
            });
            applied.push((op, effect.response.clone()));
            results.push(OpResult::Applied(effect.response));
        }

        // 3. Write it all: expired records first (rare), then documents, records and ledger
        //    counts in one pipelined round trip, then positions.
        if !expired.is_empty() {
            tx.execute(
                "DELETE FROM idempotency WHERE scope = $1 AND key = ANY($2)",
                &[&scope, &expired],
            )
            .await?;
        }
        if !changes.is_empty() {
            write_all(&tx, scope, now, expires, &docs, &read, &changes, &applied).await?;
            assign_positions(&tx, scope, now, &changes).await?;
        }
        tx.commit().await?;
        Ok(results)
    }
}

/// The bulk writes of one transaction: each changed document once, in its final state (an
/// update guarded by the version locked, or an insert: a concurrent creator makes it fail with a
/// unique violation, and the transaction runs again), and each applied key's record and ledger
/// count.
#[allow(clippy::too_many_arguments)]
async fn write_all(
    tx: &Transaction<'_>,
    scope: &str,
    now: i64,
    expires: i64,
    docs: &HashMap<(String, String), DocRow>,
    read: &HashMap<(String, String), i64>,
    changes: &[Change],
    applied: &[(&WriteOp, StoredResponse)],
) -> Result<(), Failure> {
    let mut touched: Vec<&(String, String)> = Vec::new();
    for c in changes {
        let id = docs
            .get_key_value(&(c.collection.clone(), c.key.clone()))
            .map(|(id, _)| id)
            .ok_or_else(|| Failure::Fatal("a changed document is missing".into()))?;
        if !touched.contains(&id) {
            touched.push(id);
        }
    }
    let (updated, created): (Vec<_>, Vec<_>) =
        touched.into_iter().partition(|id| read.contains_key(*id));
    let columns = |ids: &[&(String, String)]| {
        let rows: Vec<&DocRow> = ids.iter().map(|id| &docs[*id]).collect();
        (
            rows.iter()
                .map(|d| d.collection.as_str())
                .collect::<Vec<_>>(),
            rows.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            rows.iter().map(|d| d.version as i64).collect::<Vec<_>>(),
            rows.iter().map(|d| d.deleted).collect::<Vec<_>>(),
            rows.iter().map(|d| d.body.as_deref()).collect::<Vec<_>>(),
        )
    };
    let (u_c, u_k, u_v, u_d, u_b) = columns(&updated);
    let u_read: Vec<i64> = updated.iter().map(|id| read[*id]).collect();
    let (n_c, n_k, n_v, n_d, n_b) = columns(&created);
    let update = tx
        .prepare_cached(
            "UPDATE docs AS d SET version = u.v, deleted = u.del, body = u.b, updated_ms = $1
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::text[],
                         $7::bigint[]) AS u(c, k, v, del, b, r)
             WHERE d.collection = u.c AND d.key = u.k AND d.version = u.r",
        )
        .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO docs (collection, key, version, deleted, body, seq, updated_ms)
             SELECT u.c, u.k, u.v, u.del, u.b, NULL, $1
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::text[])
                  AS u(c, k, v, del, b)",
        )
        .await?;
    let record = tx
        .prepare_cached(
            "WITH rec AS (
               INSERT INTO idempotency (scope, key, fingerprint, status, version, content_type,
                                        location, body, created_ms, expires_ms)
               SELECT $1, u.k, u.f, u.s, u.v, u.ct, u.loc, u.b, $2, $3
               FROM unnest($4::text[], $5::bytea[], $6::int[], $7::bigint[], $8::text[],
                           $9::text[], $10::text[]) AS u(k, f, s, v, ct, loc, b))
             INSERT INTO ledger (scope, key, applied)
             SELECT $1, k, 1 FROM unnest($4::text[]) AS k
             ON CONFLICT (scope, key) DO UPDATE SET applied = ledger.applied + 1",
        )
        .await?;
    let r_k: Vec<&str> = applied
        .iter()
        .map(|(op, _)| op.idempotency_key.as_str())
        .collect();
    let r_f: Vec<&[u8]> = applied.iter().map(|(op, _)| &op.fingerprint[..]).collect();
    let r_s: Vec<i32> = applied.iter().map(|(_, r)| r.status as i32).collect();
    let r_v: Vec<i64> = applied.iter().map(|(_, r)| r.version as i64).collect();
    let r_ct: Vec<Option<&str>> = applied
        .iter()
        .map(|(_, r)| r.content_type.as_deref())
        .collect();
    let r_loc: Vec<Option<&str>> = applied.iter().map(|(_, r)| r.location.as_deref()).collect();
    let r_b: Vec<Option<&str>> = applied.iter().map(|(_, r)| r.body.as_deref()).collect();
    let update_params: [&(dyn ToSql + Sync); 7] = [&now, &u_c, &u_k, &u_v, &u_d, &u_b, &u_read];
    let insert_params: [&(dyn ToSql + Sync); 6] = [&now, &n_c, &n_k, &n_v, &n_d, &n_b];
    let record_params: [&(dyn ToSql + Sync); 10] = [
        &scope, &now, &expires, &r_k, &r_f, &r_s, &r_v, &r_ct, &r_loc, &r_b,
    ];
    let results = tokio::join!(
        tx.execute(&update, &update_params),
        tx.execute(&insert, &insert_params),
        tx.execute(&record, &record_params),
    );
    let [n_updated, _, _] = settle([results.0, results.1, results.2])?;
    if n_updated != updated.len() as u64 {
        return Err(Failure::Race(format!(
            "{} of {} documents moved under a guarded update",
            updated.len() as u64 - n_updated,
            updated.len()
        )));
    }
    Ok(())
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
    let (logged, stamped) = tokio::join!(
        tx.execute(&log, &log_params),
        tx.execute(&stamp, &stamp_params)
    );
    settle([logged, stamped])?;
    Ok(())
}

/// The results of statements pipelined in one transaction. When one fails, the ones after it
/// fail too, with "current transaction is aborted" (25P02), and they may be seen first: the
/// failure that counts is the first other one.
fn settle<T, const N: usize>(
    results: [Result<T, tokio_postgres::Error>; N],
) -> Result<[T; N], Failure> {
    if results.iter().any(Result::is_err) {
        let mut errors = results.into_iter().filter_map(Result::err);
        let first = errors.next().expect("an error");
        let cause = std::iter::once(first)
            .chain(errors)
            .find(|e| e.code() != Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        return Err(match cause {
            Some(e) => e.into(),
            None => Failure::Fatal("a pipelined statement failed".into()),
        });
    }
    Ok(results.map(|r| r.unwrap_or_else(|_| unreachable!("checked above"))))
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
