//! Versioned schema migrations, run at start by both stores.
//!
//! Each store keeps the versions it has applied in `schema_migrations`. At start, every migration
//! newer than the highest applied one runs in a transaction together with the row that records it
//! (SQLite: one transaction per migration; PostgreSQL, where DDL is transactional: all pending
//! ones in one), so a crash mid-migration leaves the previous version intact. A database that
//! is at a version newer than this binary knows is refused rather than used with a schema the
//! code does not understand. Migrations are append-only: never edit one that has shipped.
//!
//! Several PostgreSQL instances may start at once: the runner takes a transaction-scoped advisory
//! lock first, so one of them migrates and the others then find nothing to do.

use rusqlite::{params, Connection};

use crate::BoxError;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const SQLITE: &[Migration] = &[Migration {
    version: 1,
    name: "documents, change log, idempotency records, ledger",
    // IF NOT EXISTS: databases created before migrations were versioned already have these tables
    // and adopt version 1 as they are.
    sql: r#"
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
"#,
}];

pub const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    name: "documents, change log, change positions, idempotency records, ledger",
    sql: r#"
CREATE TABLE docs (
    collection text    NOT NULL,
    key        text    NOT NULL,
    version    bigint  NOT NULL,
    deleted    boolean NOT NULL,
    body       text,
    -- The position of the doc's latest change. NULL only inside the transaction that creates the
    -- doc: positions are assigned as the transaction's last step (see postgres.rs).
    seq        bigint,
    updated_ms bigint  NOT NULL,
    PRIMARY KEY (collection, key)
);
CREATE UNIQUE INDEX docs_by_seq ON docs (seq);
CREATE TABLE changes (
    seq        bigint  PRIMARY KEY,
    collection text    NOT NULL,
    key        text    NOT NULL,
    version    bigint  NOT NULL,
    deleted    boolean NOT NULL,
    scope      text    NOT NULL,
    idem_key   text    NOT NULL,
    at_ms      bigint  NOT NULL
);
-- The one-row counter behind change positions. Its row lock, taken as the last statement of a
-- write transaction and held until COMMIT, makes positions follow commit order on every instance.
CREATE TABLE change_seq (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    last bigint  NOT NULL
);
INSERT INTO change_seq (id, last) VALUES (true, 0);
CREATE TABLE idempotency (
    scope        text    NOT NULL,
    key          text    NOT NULL,
    fingerprint  bytea   NOT NULL,
    status       integer NOT NULL,
    version      bigint  NOT NULL,
    content_type text,
    location     text,
    body         text,
    created_ms   bigint  NOT NULL,
    expires_ms   bigint  NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_by_expiry ON idempotency (expires_ms);
-- Counts effects per idempotency key independently of the idempotency table, so a bug that
-- applied a key twice shows up as 2 instead of being hidden by the primary key.
CREATE TABLE ledger (
    scope   text   NOT NULL,
    key     text   NOT NULL,
    applied bigint NOT NULL,
    PRIMARY KEY (scope, key)
);
"#,
}];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    bigint PRIMARY KEY,
    name       text   NOT NULL,
    applied_ms bigint NOT NULL
)";

fn too_new(found: i64, known: i64) -> BoxError {
    format!(
        "the database schema is at version {found}, newer than this server knows ({known}); \
         run a newer outbox-server"
    )
    .into()
}

fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

/// Brings a SQLite database up to date; returns the versions applied now.
pub fn run_sqlite(conn: &mut Connection) -> Result<Vec<i64>, BoxError> {
    conn.execute_batch(CREATE_TABLE)?;
    let mut applied = Vec::new();
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if current > latest(SQLITE) {
        return Err(too_new(current, latest(SQLITE)));
    }
    for m in SQLITE.iter().filter(|m| m.version > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, super::now_ms()],
        )?;
        tx.commit()?;
        applied.push(m.version);
    }
    Ok(applied)
}

/// An arbitrary constant pair for `pg_advisory_xact_lock(int, int)`: the two-key form never
/// collides with the single-bigint keys that claim idempotency keys.
const MIGRATION_LOCK: (i32, i32) = (0x6f75_7462, 1);

/// Brings a PostgreSQL schema up to date; returns the versions applied now.
pub async fn run_postgres(client: &mut tokio_postgres::Client) -> Result<Vec<i64>, BoxError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
    )
    .await?;
    tx.batch_execute(CREATE_TABLE).await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    if current > latest(POSTGRES) {
        return Err(too_new(current, latest(POSTGRES)));
    }
    let mut applied = Vec::new();
    for m in POSTGRES.iter().filter(|m| m.version > current) {
        // DDL is transactional in PostgreSQL: every pending migration commits together with
        // its schema_migrations row, or none does.
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &super::now_ms()],
        )
        .await?;
        applied.push(m.version);
    }
    tx.commit().await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing() {
        for list in [SQLITE, POSTGRES] {
            let versions: Vec<i64> = list.iter().map(|m| m.version).collect();
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
            assert_eq!(versions.first(), Some(&1));
        }
    }

    #[test]
    fn sqlite_migrates_once_and_refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(run_sqlite(&mut conn).unwrap(), vec![1]);
        assert_eq!(run_sqlite(&mut conn).unwrap(), Vec::<i64>::new());
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (99, 'future', 0)",
            [],
        )
        .unwrap();
        let err = run_sqlite(&mut conn).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
    }
}
