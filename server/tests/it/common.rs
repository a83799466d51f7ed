//! Test harness: runs the real `outbox-server` binary on 127.0.0.1 with a temp SQLite file and
//! talks to it over HTTP.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const PROBLEMS: &str = "https://outbox-sync.dev/problems/";

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub db: PathBuf,
    pub stderr: PathBuf,
    args: Vec<String>,
    pub client: reqwest::Client,
    _dir: TempDir,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("outbox.sqlite");
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

fn spawn(db: &Path, stderr: &Path, args: &[String]) -> (Child, String) {
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
