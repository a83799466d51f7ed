//! Test harness: runs the real `outbox-server` binary on 127.0.0.1 and talks to it over HTTP.
//!
//! Every test runs once per store (see [`on_both_stores`]): with a temp SQLite file, and with a
//! fresh database in a throw-away PostgreSQL cluster that this test binary starts on first use
//! (`scripts/pg-scratch.sh`: initdb in a temp dir, a free port on 127.0.0.1, run as the
//! `postgres` user when the tests run as root). The cluster is stopped and deleted by a watchdog
//! once this process exits, however it exits.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const PROBLEMS: &str = "https://outbox-sync.dev/problems/";

/// Which store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares each `async fn NAME(store: Backend)` as two tests, `NAME::sqlite` and
/// `NAME::postgres`: one suite, run against both stores.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

/// The throw-away cluster shared by every PostgreSQL test of this binary: (base URL, directory).
fn cluster() -> &'static (String, String) {
    static CLUSTER: OnceLock<(String, String)> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let out = Command::new("bash")
            .arg(scripts_dir().join("pg-scratch.sh"))
            .args(["start", "--owner", &std::process::id().to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/pg-scratch.sh");
        assert!(
            out.status.success(),
            "could not start a throw-away PostgreSQL (scripts/pg-scratch.sh start)"
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let mut lines = text.lines();
        let url = lines.next().expect("url").to_owned();
        let dir = lines.next().expect("dir").to_owned();
        (url, dir)
    })
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// A database no other test uses: a temp SQLite file in `dir`, or a new PostgreSQL database.
pub fn fresh_db(store: Backend, dir: &Path) -> String {
    match store {
        Backend::Sqlite => dir.join("outbox.sqlite").to_str().unwrap().to_owned(),
        Backend::Postgres => {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "t{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let out = Command::new("bash")
                .arg(scripts_dir().join("pg-scratch.sh"))
                .args(["createdb", &cluster().1, &name])
                .stderr(Stdio::inherit())
                .output()
                .expect("createdb");
            assert!(out.status.success(), "createdb {name} failed");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        }
    }
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    /// The `--db` argument: a SQLite path or a postgres:// URL.
    pub db: String,
    pub stderr: PathBuf,
    args: Vec<String>,
    pub client: reqwest::Client,
    _dir: TempDir,
}

impl Server {
    pub fn start(store: Backend) -> Server {
        Server::start_with(store, &[])
    }

    pub fn start_with(store: Backend, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = fresh_db(store, dir.path());
        Server::start_on(&db, dir, args)
    }

    /// Another instance on the same database (PostgreSQL only: a SQLite file has one process).
    pub fn another_instance(&self, args: &[&str]) -> Server {
        Server::on_database(&self.db, args)
    }

    /// An instance on an existing database (a `--db` argument).
    pub fn on_database(db: &str, args: &[&str]) -> Server {
        Server::start_on(db, tempfile::tempdir().expect("tempdir"), args)
    }

    fn start_on(db: &str, dir: TempDir, args: &[&str]) -> Server {
        let db = db.to_owned();
        let stderr = dir.path().join("stderr.log");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn(&db, &stderr, &args);
        Server {
            child: Some(child),
            url,
            db,
            stderr,
            args,
            client: client(Duration::from_secs(20)),
            _dir: dir,
        }
    }

    /// SIGKILL: no chance to flush or clean up, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the process to exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let mut child = self.child.take().expect("server running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        for _ in 0..100 {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("server did not exit within 5 s of SIGTERM");
    }

    /// Starts the binary again on the same database (on a new port).
    pub fn restart(&mut self) {
        self.kill();
        let (child, url) = spawn(&self.db, &self.stderr, &self.args);
        self.child = Some(child);
        self.url = url;
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api{path}", self.url)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.api(path))
    }

    pub fn put(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.req(Method::PUT, path)
            .header("Idempotency-Key", sf(key))
            .header("Content-Type", "application/json")
            .body(body.to_string())
    }

    pub fn patch(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.req(Method::PATCH, path)
            .header("Idempotency-Key", sf(key))
            .header("Content-Type", "application/merge-patch+json")
            .body(body.to_string())
    }

    pub fn delete(&self, path: &str, key: &str) -> RequestBuilder {
        self.req(Method::DELETE, path)
            .header("Idempotency-Key", sf(key))
    }

    pub fn push(&self, ops: Value) -> RequestBuilder {
        self.req(Method::POST, "/push")
            .header("Content-Type", "application/json")
            .body(json!({ "ops": ops }).to_string())
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Option<String>, Value) {
        let res = self.req(Method::GET, path).send().await.expect("GET");
        parts(res).await
    }

    pub async fn ledger(&self) -> Value {
        self.client
            .get(format!("{}/_admin/ledger", self.url))
            .send()
            .await
            .expect("ledger")
            .json()
            .await
            .expect("ledger json")
    }

    pub async fn set_faults(&self, config: Value) -> Value {
        let res = self
            .client
            .post(format!("{}/_admin/faults", self.url))
            .header("Content-Type", "application/json")
            .body(config.to_string())
            .send()
            .await
            .expect("faults");
        assert_eq!(res.status(), 200, "fault config rejected");
        res.json().await.expect("faults json")
    }

    /// Every change, paging with `limit`.
    pub async fn pull_all(&self, since: &str, limit: usize) -> (Vec<Value>, String) {
        let mut cursor = since.to_owned();
        let mut all = Vec::new();
        loop {
            let (status, _, page) = self
                .get_json(&format!("/pull?since={cursor}&limit={limit}"))
                .await;
            assert_eq!(status, 200, "{page}");
            let changes = page["changes"].as_array().expect("changes").clone();
            assert!(changes.len() <= limit);
            all.extend(changes);
            cursor = page["cursor"].as_str().expect("cursor").to_owned();
            if !page["hasMore"].as_bool().expect("hasMore") {
                return (all, cursor);
            }
        }
    }

    pub fn stderr_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.stderr) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("client")
}

/// The structured-field string form of an idempotency key.
pub fn sf(key: &str) -> String {
    format!("\"{key}\"")
}

pub async fn parts(res: Response) -> (StatusCode, Option<String>, Value) {
    let status = res.status();
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, etag, body)
}

/// Asserts a problem+json response of the given type and returns its body.
pub async fn expect_problem(res: Response, status: u16, slug: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status for {slug}");
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(body["type"], format!("{PROBLEMS}{slug}"), "{body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string());
    body
}

pub fn replayed(res: &Response) -> bool {
    res.headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

fn spawn(db: &str, stderr: &Path, args: &[String]) -> (Child, String) {
    let log = File::options()
        .create(true)
        .append(true)
        .open(stderr)
        .expect("stderr log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outbox-server"))
        .arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn outbox-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "server did not print its address; stderr:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
    };
    let url = line
        .strip_prefix("outbox-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (child, url)
}
