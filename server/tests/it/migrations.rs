//! Versioned schema migrations at start (the SQLite side is unit-tested in the crate, and every
//! restart test reopens a migrated file).

use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::*;

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn postgres_instances_starting_together_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_db(Backend::Postgres, dir.path());
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Server::on_database(&db, &[])))
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    });
    for (i, s) in servers.iter().enumerate() {
        let res = s
            .put(&format!("/docs/c/{i}"), &format!("k{i}"), &json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "instance {i}");
    }
    let client = pg_client(&db).await;
    let rows = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [1]);
}

#[tokio::test]
async fn a_postgres_schema_newer_than_the_binary_is_refused() {
    let s = Server::start(Backend::Postgres);
    let client = pg_client(&s.db).await;
    client
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (99, 'future', 0)",
            &[],
        )
        .await
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_outbox-server"))
        .args(["--addr", "127.0.0.1:0", "--db", &s.db])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("schema is at version 99"),
        "stderr: {stderr}"
    );
}
